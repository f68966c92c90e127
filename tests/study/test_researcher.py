"""Researcher pages: who sees what, the dashboard, launching, pilot mode, exclusions.

Personas: `researcher_owner` (not staff) owns the study; `researcher_b` (not staff) owns
nothing; `researcher_a` is staff and sees every study but may not launch others'.
"""

from pathlib import Path

import pytest
from django.urls import reverse

from explain_engine.services.precompute import precompute_job_create
from explain_engine.tasks import precompute_job_run
from study.design.launch import study_config_hash, study_launch, study_launch_problems
from study.design.spec import StudyConfigError, exclusion_rules_check
from study.models import Participant, Response, Study, StudyItem
from study.results.exclusions import participants_apply_exclusions
from study.results.rows import study_export_rows
from tests.study.conftest import make_study
from tests.study.test_export import finish
from tests.study.test_participant_flow import enter

pytestmark = pytest.mark.django_db


def study_pages(slug):
    return [
        reverse("researcher-study", args=[slug]),
        reverse("researcher-export", args=[slug]),
        reverse("researcher-export-zip", args=[slug]),
    ]


@pytest.fixture
def owned_study(classifier, researcher_owner):
    return make_study(classifier, owners=[researcher_owner])


def test_anonymous_is_sent_to_login(client, owned_study):
    for url in study_pages(owned_study.slug):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/researcher/login/")


def test_a_researcher_cannot_see_another_researchers_study(
    client, owned_study, researcher_owner, researcher_b
):
    client.force_login(researcher_b)
    assert owned_study.slug not in client.get(reverse("researcher-home")).content.decode()
    for url in study_pages(owned_study.slug):
        assert client.get(url).status_code == 404, url
    launch = reverse("researcher-launch", args=[owned_study.slug])
    assert client.post(launch, {"status": "live"}).status_code == 404
    reconcile = reverse("researcher-reconcile-prolific", args=[owned_study.slug])
    assert client.post(reconcile).status_code == 404

    client.force_login(researcher_owner)
    assert owned_study.slug in client.get(reverse("researcher-home")).content.decode()
    for url in study_pages(owned_study.slug):
        assert client.get(url).status_code == 200, url


def test_staff_see_every_study_but_only_owners_change_it(client, owned_study, researcher_a):
    client.force_login(researcher_a)
    assert client.get(reverse("researcher-study", args=[owned_study.slug])).status_code == 200
    toggle = reverse("researcher-show-accuracy", args=[owned_study.slug])
    assert client.post(toggle, {"show": "yes"}).status_code == 403
    owned_study.refresh_from_db()
    assert owned_study.show_accuracy is False


def test_dashboard_counts_hides_accuracy_while_live_and_lists_activity(
    client, owned_study, researcher_owner
):
    finish(client, owned_study, "first")
    enter(client, owned_study, pid="second")  # entered, still active
    client.force_login(researcher_owner)
    url = reverse("researcher-study", args=[owned_study.slug])
    page = client.get(url)
    dashboard = page.context["dashboard"]
    assert dashboard.totals == {
        "started": 2,
        "active": 1,
        "completed": 1,
        "timed_out": 0,
        "returned": 0,
        "excluded": 0,
    }
    assert dashboard.median_duration_s is not None
    html = page.content.decode()
    assert "Accuracy so far is hidden" in html and "<th>Accuracy</th>" not in html
    assert 'http-equiv="refresh" content="30"' in html
    assert "completed" in [event.what for event in dashboard.recent]
    assert len(dashboard.recent) <= 20

    client.post(reverse("researcher-show-accuracy", args=[owned_study.slug]), {"show": "yes"})
    page = client.get(url)
    assert "<th>Accuracy</th>" in page.content.decode()
    accuracies = [row.accuracy for row in page.context["dashboard"].conditions]
    assert 1.0 in accuracies  # `finish` answers every trial correctly


def test_dashboard_lists_launch_problems_and_launches_on_post(client, classifier, researcher_owner):
    study = make_study(classifier, launch=False, owners=[researcher_owner])
    client.force_login(researcher_owner)
    url = reverse("researcher-study", args=[study.slug])
    html = client.get(url).content.decode()
    assert "no prediction" in html and "launching is blocked" in html
    launch = reverse("researcher-launch", args=[study.slug])
    assert client.get(launch).status_code == 405
    client.post(launch, {"status": "live"})
    study.refresh_from_db()
    assert study.status == Study.Status.DRAFT
    assert "cannot launch" in client.get(url).content.decode()

    images = [item.image for item in study.items.all()]
    precompute_job_run.delay(
        precompute_job_create(classifier=classifier, methods=[("gradcam", {})], images=images).pk
    )
    assert study_launch_problems(study=study) == []
    client.post(launch, {"status": "live"})
    study.refresh_from_db()
    assert study.status == Study.Status.LIVE and len(study.config_hash) == 64


def test_launch_problems_name_each_condition_missing_explanations(classifier):
    study = make_study(classifier, launch=False)
    from explain_engine.services.predictions import predictions_compute

    predictions_compute(classifier=classifier, images=[i.image for i in study.items.all()])
    problems = study_launch_problems(study=study)
    assert len(problems) == 1 and "condition 'gradcam': 4 of 4 item(s)" in problems[0]
    # Named by their file in the data set, a few and how many more; never by opaque UUID.
    images = sorted((item.image for item in study.items.all()), key=lambda image: image.pk)
    file_names = [Path(image.source_path).name for image in images]
    assert all(name for name in file_names)
    shown = [name for name in file_names if name in problems[0]]
    assert len(shown) == 3 and "and 1 more" in problems[0]
    assert not any(str(image.public_id) in problems[0] for image in images)


def test_pilot_participants_stay_flagged_after_going_live(client, classifier):
    study = make_study(classifier, status=Study.Status.PILOT)
    finish(client, study, "pilot-person")
    study_launch(study=study, status=Study.Status.LIVE)
    finish(client, study, "live-person")
    flags = dict(Participant.objects.values_list("platform_identity__worker_id", "is_pilot"))
    assert flags == {"pilot-person": True, "live-person": False}
    rows = list(study_export_rows(study=study))
    by_pilot = {row["participant_pilot"] for row in rows}
    assert by_pilot == {0, 1}
    with pytest.raises(StudyConfigError, match="cannot be launched"):
        study_launch(study=study, status=Study.Status.PILOT)


def test_exclusion_rules_are_applied_with_reasons(client, classifier):
    study = make_study(
        classifier,
        n_attention=1,
        exclusion_rules={"max_failed_attention_checks": 0, "min_median_response_ms": 2000},
    )
    # Every main trial answered with the true species in 1234 ms, below the declared minimum
    # median, and the attention check answered against its instruction. (Answering it with
    # the true species instead fails only when the instructed answer, which depends on the
    # item's pk, is another species: 7 pks in 8, and on PostgreSQL pks carry over from
    # earlier tests.)
    participant = finish(client, study, "quick", attention_correct=False)
    participant.refresh_from_db()
    assert participant.excluded is True
    assert participant.exclusion_reasons == [
        "failed 1 attention checks (more than 0)",
        "median response time 1234 ms (below 2000 ms)",
    ]
    row = next(iter(study_export_rows(study=study)))
    assert row["participant_excluded"] == 1
    assert row["exclusion_reasons"] == "; ".join(participant.exclusion_reasons)

    Response.objects.filter(participant=participant, phase=StudyItem.Role.ATTENTION).update(
        is_correct=True
    )
    assert participants_apply_exclusions(study=study) == 1
    participant.refresh_from_db()
    assert participant.exclusion_reasons == ["median response time 1234 ms (below 2000 ms)"]
    assert participants_apply_exclusions(study=study) == 0  # nothing new: nothing changes


def test_straight_lining_rule_and_passing_participant(client, classifier):
    study = make_study(classifier, exclusion_rules={"max_same_answer_share": 0.5})
    participant = finish(client, study, "careful")
    participant.refresh_from_db()
    # Four main items of four different species, all answered right: no single answer dominates.
    assert participant.excluded is False and participant.exclusion_reasons == []
    Response.objects.filter(participant=participant).update(answer="same")
    participants_apply_exclusions(study=study)
    participant.refresh_from_db()
    assert participant.exclusion_reasons == [
        "answered 'same' on 4 of 4 main trials (more than 50%)"
    ]


@pytest.mark.parametrize(
    "rules, message",
    [
        ({"max_failed": 1}, "unknown exclusion rule 'max_failed'"),
        ({"max_failed_attention_checks": "1"}, "must be an integer"),
        ({"max_failed_attention_checks": True}, "must be an integer"),
        ({"max_same_answer_share": 1.5}, "out of range"),
        ({"min_median_response_ms": -1}, "out of range"),
    ],
)
def test_exclusion_rules_are_checked(rules, message):
    with pytest.raises(StudyConfigError, match=message):
        exclusion_rules_check(rules)


def test_exclusion_rules_are_part_of_the_frozen_design(classifier):
    study = make_study(classifier, launch=False, exclusion_rules={"max_same_answer_share": 0.9})
    before = study_config_hash(study=study)
    study.exclusion_rules = {"max_same_answer_share": 0.8}
    assert study_config_hash(study=study) != before
