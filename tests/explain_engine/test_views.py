"""Researcher pages for precompute jobs.

Personas: `researcher_a` is staff with no engine permission; `job_viewer` may see jobs;
`job_operator` may see and retry them.
"""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from explain_engine.models import Explanation, PrecomputeJob
from explain_engine.services.precompute import precompute_job_create
from explain_engine.tasks import precompute_job_run

pytestmark = pytest.mark.django_db


def _user_with(django_user_model, username: str, *codenames: str):
    user = django_user_model.objects.create_user(
        username=username, password="a-long-test-password", is_staff=True
    )
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def job_viewer(django_user_model):
    return _user_with(django_user_model, "job_viewer", "view_precomputejob")


@pytest.fixture
def job_operator(django_user_model):
    return _user_with(
        django_user_model, "job_operator", "view_precomputejob", "change_precomputejob"
    )


@pytest.fixture
def finished_job(classifier) -> PrecomputeJob:
    """Grad-CAM and integrated gradients over the test split; one image unreadable, one
    Grad-CAM explanation failed."""
    images = list(classifier.image_set.images.filter(split="test").order_by("pk"))
    with open(images[0].file.path, "wb") as handle:
        handle.write(b"not an image")
    job = precompute_job_create(
        classifier=classifier,
        methods=[("gradcam", {}), ("integrated_gradients", {"steps": 4})],
        images=images,
    )
    precompute_job_run.delay(job.pk)
    Explanation.objects.filter(method="gradcam", image=images[1]).update(
        status=Explanation.Status.FAILED, error="ValueError: wrong shape in test"
    )
    job.refresh_from_db()
    return job


def test_the_job_list_shows_each_job_with_its_progress(client, job_viewer, finished_job):
    client.force_login(job_viewer)
    page = client.get(reverse("researcher-jobs")).content.decode()
    assert reverse("researcher-job", args=[finished_job.pk]) in page
    explained = len(finished_job.image_ids) - 1
    assert f"{2 * explained - 1}/{2 * explained} done" in page and "1 failed" in page


def test_the_job_page_shows_progress_per_method_and_every_failure(client, job_viewer, finished_job):
    client.force_login(job_viewer)
    response = client.get(reverse("researcher-job", args=[finished_job.pk]))
    assert response.status_code == 200
    methods = {row.method: row for row in response.context["methods"]}
    explained = len(finished_job.image_ids) - 1
    assert (methods["gradcam"].done, methods["gradcam"].failed) == (explained - 1, 1)
    assert (methods["integrated_gradients"].done, methods["integrated_gradients"].failed) == (
        explained,
        0,
    )
    page = response.content.decode()
    assert "ValueError: wrong shape in test" in page
    assert "cannot identify image file" in page
    assert "Retry" not in page  # a viewer may not retry


def test_pages_need_the_view_permission(client, researcher_a, finished_job):
    detail = reverse("researcher-job", args=[finished_job.pk])
    anonymous = client.get(detail)
    assert anonymous.status_code == 302 and anonymous.url.startswith(reverse("researcher-login"))
    client.force_login(researcher_a)
    assert client.get(reverse("researcher-jobs")).status_code == 403
    assert client.get(detail).status_code == 403


def test_retry_failed_recomputes_the_failed_rows(
    client, job_operator, finished_job, django_capture_on_commit_callbacks
):
    client.force_login(job_operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("researcher-job-retry", args=[finished_job.pk]), {"method": "gradcam"}
        )
    assert response.status_code == 302
    retried = Explanation.objects.get(job=finished_job, attempts=2)
    assert (retried.method, retried.status, retried.error) == ("gradcam", "done", "")
    assert not Explanation.objects.filter(status=Explanation.Status.FAILED).exists()
    page = client.get(response.url).content.decode()
    assert "1 failed explanation(s) queued again." in page


def test_retry_refuses_a_method_the_job_does_not_have_and_changes_nothing(
    client, job_operator, finished_job
):
    client.force_login(job_operator)
    response = client.post(
        reverse("researcher-job-retry", args=[finished_job.pk]), {"method": "sag"}
    )
    assert response.status_code == 400
    assert "has no method &#x27;sag&#x27;" in response.content.decode()
    assert Explanation.objects.filter(status=Explanation.Status.FAILED).count() == 1
    finished_job.refresh_from_db()
    assert finished_job.status == PrecomputeJob.Status.FAILED


def test_retry_needs_post_a_real_job_and_the_change_permission(
    client, job_viewer, job_operator, finished_job
):
    retry = reverse("researcher-job-retry", args=[finished_job.pk])
    client.force_login(job_viewer)
    assert client.post(retry).status_code == 403
    client.force_login(job_operator)
    assert client.get(retry).status_code == 405
    assert client.post(reverse("researcher-job-retry", args=[999999])).status_code == 404
    assert client.get(reverse("researcher-job", args=[999999])).status_code == 404
    assert Explanation.objects.filter(status=Explanation.Status.FAILED).count() == 1
