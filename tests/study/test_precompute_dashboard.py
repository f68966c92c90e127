"""Precompute from the dashboard: the owner's post starts the study's job once, its page
shows the progress per method with an ETA, and the jobs list names the study and each
method once.

`researcher_owner` owns the study; `researcher_a` is staff (sees it, owns nothing);
`researcher_b` sees nothing. The worker process the embedded mode starts is replaced by a
recorder: a test database is not one another process can open.
"""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from explain_engine.models import Explanation, PrecomputeJob
from explain_engine.selectors import precompute_job_method_progress
from explain_engine.services.precompute import precompute_job_plan
from study.researcher import precompute
from tests.study.conftest import make_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def started(monkeypatch):
    """The job ids a worker process was started for."""
    job_ids = []
    monkeypatch.setattr(
        precompute, "precompute_worker_start", lambda *, job_id, log_path: job_ids.append(job_id)
    )
    return job_ids


def researcher_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def draft(classifier, researcher_owner):
    return make_study(classifier, owners=[researcher_owner], launch=False)


def test_a_double_post_starts_one_job(
    draft, researcher_owner, started, django_capture_on_commit_callbacks
):
    client = researcher_client(researcher_owner)
    url = reverse("researcher-precompute", args=[draft.slug])
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(url)
        second = client.post(url)
    job = PrecomputeJob.objects.get()
    assert list(draft.precompute_jobs.all()) == [job]
    assert started == [job.pk]
    job_page = reverse("researcher-study-job", args=[draft.slug, job.pk])
    assert first["Location"] == second["Location"] == job_page
    assert {spec["method"] for spec in job.methods} == {"gradcam"}
    assert sorted(job.image_ids) == sorted(draft.items.values_list("image_id", flat=True))
    # The dashboard links to it, and the job page back to the study.
    dashboard = client.get(reverse("researcher-study", args=[draft.slug])).content.decode()
    assert job_page in dashboard and "Compute missing explanations" in dashboard
    page = client.get(job_page).content.decode()
    assert reverse("researcher-study", args=[draft.slug]) in page


def test_a_finished_job_lets_the_next_post_start_another(draft, researcher_owner, started):
    client = researcher_client(researcher_owner)
    url = reverse("researcher-precompute", args=[draft.slug])
    client.post(url)
    PrecomputeJob.objects.update(status=PrecomputeJob.Status.DONE)
    client.post(url)
    assert draft.precompute_jobs.count() == 2


def test_a_job_whose_worker_died_is_resumed_once_it_has_been_quiet(
    draft, researcher_owner, started, django_capture_on_commit_callbacks
):
    client = researcher_client(researcher_owner)
    url = reverse("researcher-precompute", args=[draft.slug])
    dashboard_url = reverse("researcher-study", args=[draft.slug])
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url)
    job = PrecomputeJob.objects.get()
    precompute_job_plan(job=job)
    # Its worker claimed a row and died: the row stays running under a claim nobody holds.
    claimed = job.explanations.first()
    long_ago = timezone.now() - timedelta(minutes=20)
    Explanation.objects.filter(pk=claimed.pk).update(status="running", started_at=long_ago)
    assert "Resume computing" not in client.get(dashboard_url).content.decode()
    PrecomputeJob.objects.filter(pk=job.pk).update(created_at=long_ago)
    assert "Resume computing" in client.get(dashboard_url).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url)
    assert started == [job.pk, job.pk] and draft.precompute_jobs.count() == 1
    claimed.refresh_from_db()
    assert claimed.status == "pending" and claimed.claim_token is None


def test_only_the_owner_starts_it(draft, researcher_a, researcher_b, started):
    url = reverse("researcher-precompute", args=[draft.slug])
    assert researcher_client(researcher_b).post(url).status_code == 404
    assert researcher_client(researcher_a).post(url).status_code == 403  # staff, not owner
    assert not PrecomputeJob.objects.exists() and started == []


def test_the_job_page_shows_done_of_total_per_method_and_an_eta(
    draft, researcher_owner, researcher_a, started
):
    job, created = precompute.study_precompute_start(study=draft)
    assert created
    precompute_job_plan(job=job)  # the rows a worker then computes
    rows = list(job.explanations.order_by("pk"))
    assert len(rows) == 4
    now = timezone.now()
    Explanation.objects.filter(pk__in=[rows[0].pk, rows[1].pk]).update(
        status=Explanation.Status.DONE,
        started_at=now - timedelta(seconds=120),
        finished_at=now,
    )
    page = researcher_client(researcher_owner).get(
        reverse("researcher-study-job", args=[draft.slug, job.pk])
    )
    html = page.content.decode()
    (gradcam,) = page.context["methods"]
    assert (gradcam.method, gradcam.done, gradcam.total) == ("gradcam", 2, 4)
    # Two of four in two minutes: two more minutes at that rate.
    assert gradcam.eta == "about 2 min left"
    assert '<td class="done">2/4</td>' in html and "about 2 min left" in html
    assert '<meta http-equiv="refresh" content="5">' in html
    # The engine's page of the job, for those who may see jobs, shows the same.
    researcher_a.user_permissions.add(Permission.objects.get(codename="view_precomputejob"))
    full = researcher_client(researcher_a).get(reverse("researcher-job", args=[job.pk]))
    assert "about 2 min left" in full.content.decode()
    assert reverse("researcher-study", args=[draft.slug]) in full.content.decode()


def test_no_eta_before_anything_is_done(draft, started):
    job, _ = precompute.study_precompute_start(study=draft)
    precompute_job_plan(job=job)
    first = job.explanations.order_by("pk").first()
    Explanation.objects.filter(pk=first.pk).update(
        status=Explanation.Status.RUNNING, started_at=timezone.now() - timedelta(seconds=60)
    )
    (gradcam,) = precompute_job_method_progress(job=job)
    assert (gradcam.running, gradcam.done) == (1, 0)
    assert gradcam.eta_seconds is None and gradcam.eta == ""


def test_the_jobs_list_names_the_study_and_each_method_once(draft, researcher_a):
    job = PrecomputeJob.objects.create(
        classifier=draft.classifier,
        methods=[
            {"method": "gradcam", "params": {}},
            {"method": "sag", "params": {"a": 1}},
            {"method": "sag", "params": {"a": 2}},
        ],
        image_ids=[],
    )
    draft.precompute_jobs.add(job)
    researcher_a.user_permissions.add(Permission.objects.get(codename="view_precomputejob"))
    client = researcher_client(researcher_a)
    html = client.get(reverse("researcher-jobs")).content.decode()
    assert '<td class="methods">gradcam, sag</td>' in html
    study_link = f'<a href="{reverse("researcher-study", args=[draft.slug])}">{draft.slug}</a>'
    assert f'<td class="study">{study_link}</td>' in html
    # Linked from the researcher's pages.
    assert reverse("researcher-jobs") in client.get(reverse("researcher-home")).content.decode()
