"""A study's lifecycle and quotas, on the web and the command line, every change logged.

`researcher_owner` owns the study and may change it; `researcher_a` is staff and sees it
but may not change it.
"""

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from study.design.launch import study_config_hash
from study.flow.entry import EntryRefused, participant_enter
from study.models import Study, StudyEvent
from study.researcher.lifecycle import LifecycleError, study_change, study_quota_set
from tests.study.conftest import make_study

pytestmark = pytest.mark.django_db


def _log(study):
    return list(study.events.order_by("pk").values_list("action", "status_before", "status_after"))


def test_each_change_moves_the_status_as_declared_and_is_logged(classifier, researcher_owner):
    study = make_study(classifier, status=Study.Status.PILOT)
    for action in ("pause", "resume", "launch_live", "pause", "resume", "close", "reopen"):
        study_change(study=study, action=action, actor=researcher_owner, reason=f"why {action}")
    assert study.status == "live"
    study_change(study=study, action="close")
    study_change(study=study, action="archive")
    assert study.status == "closed" and study.archived_at is not None
    assert _log(study) == [
        ("pause", "pilot", "paused"),
        ("resume", "paused", "pilot"),  # back to what it was paused from
        ("launch_live", "pilot", "live"),
        ("pause", "live", "paused"),
        ("resume", "paused", "live"),
        ("close", "live", "closed"),
        ("reopen", "closed", "live"),
        ("close", "live", "closed"),
        ("archive", "closed", "closed"),
    ]
    first = study.events.order_by("pk").first()
    assert first.actor == researcher_owner and first.reason == "why pause"
    with pytest.raises(LifecycleError, match="archived"):
        study_change(study=study, action="reopen")
    with pytest.raises(LifecycleError, match="archived"):
        study_quota_set(study=study, quota=5)


def test_a_change_the_status_does_not_allow_changes_nothing(classifier):
    study = make_study(classifier, launch=False)
    for action in ("pause", "resume", "close", "reopen", "archive"):
        with pytest.raises(LifecycleError, match="a draft study cannot be"):
            study_change(study=study, action=action)
    study.refresh_from_db()
    assert study.status == "draft" and not StudyEvent.objects.exists()


def test_quotas_change_who_enters_are_logged_and_leave_the_design_hash(classifier):
    study = make_study(classifier, per_condition=1)
    frozen_hash = study.config_hash
    participant_enter(study=study, worker_id="p1")
    participant_enter(study=study, worker_id="p2")
    with pytest.raises(EntryRefused, match="full"):
        participant_enter(study=study, worker_id="p3")
    study_quota_set(study=study, quota=2, reason="more power")
    study_quota_set(study=study, quota=1, condition="gradcam")
    assert participant_enter(study=study, worker_id="p3").condition.name == "none"
    with pytest.raises(EntryRefused, match="full"):
        participant_enter(study=study, worker_id="p4")
    assert study_config_hash(study=study) == frozen_hash
    details = list(study.events.order_by("pk").values_list("detail", "reason"))
    assert details == [
        ({"condition": None, "from": 1, "to": 2}, "more power"),
        ({"condition": "gradcam", "from": None, "to": 1}, ""),
    ]
    for bad, message in ((0, "not in 1..100000"), (10**11, "not in 1..100000")):
        with pytest.raises(LifecycleError, match=message):
            study_quota_set(study=study, quota=bad)
    with pytest.raises(LifecycleError, match="no condition named 'lime'"):
        study_quota_set(study=study, quota=3, condition="lime")
    assert study.events.count() == 2


def test_the_dashboard_changes_and_shows_the_log_for_owners_only(
    client, classifier, researcher_owner, researcher_a
):
    study = make_study(classifier, owners=[researcher_owner])
    lifecycle = reverse("researcher-lifecycle", args=[study.slug])
    quota = reverse("researcher-quota", args=[study.slug])
    dashboard = reverse("researcher-study", args=[study.slug])
    client.force_login(researcher_a)
    assert client.post(lifecycle, {"action": "pause"}).status_code == 403
    client.force_login(researcher_owner)
    assert 'value="pause"' in client.get(dashboard).content.decode()
    response = client.post(lifecycle, {"action": "pause", "reason": "fixing a typo"})
    assert response.status_code == 302
    study.refresh_from_db()
    assert study.status == "paused"
    html = client.get(dashboard).content.decode()
    assert "paused (live → paused) by researcher_owner: “fixing a typo”" in html
    assert 'value="resume"' in html and 'value="pause"' not in html
    # Bad input: a 400 naming the field, nothing changed.
    for data, field in (
        ({"action": "explode"}, "action"),
        ({"action": "quota"}, "action"),
        ({"action": "close", "reason": "x" * 501}, "reason"),
    ):
        response = client.post(lifecycle, data)
        assert response.status_code == 400 and f"<code>{field}</code>" in response.content.decode()
    response = client.post(quota, {"quota": "100000000000"})
    assert response.status_code == 400 and "<code>quota</code>" in response.content.decode()
    assert client.post(quota, {"condition": "Bad Name!", "quota": "3"}).status_code == 400
    study.refresh_from_db()
    assert study.status == "paused" and study.participants_per_condition == 10
    assert study.events.count() == 1
    # A change the status does not allow comes back as a message on the dashboard.
    client.post(lifecycle, {"action": "archive"})
    assert "cannot be archived" in client.get(dashboard).content.decode()
    assert client.post(quota, {"condition": "gradcam", "quota": "25"}).status_code == 302
    assert "quota changed of gradcam from default to 25" in client.get(dashboard).content.decode()


def test_archived_studies_are_listed_only_on_request(client, classifier, researcher_owner):
    study = make_study(classifier, owners=[researcher_owner])
    study_change(study=study, action="close")
    study_change(study=study, action="archive")
    client.force_login(researcher_owner)
    home = reverse("researcher-home")
    assert f"/researcher/studies/{study.slug}/" not in client.get(home).content.decode()
    assert (
        f"/researcher/studies/{study.slug}/" in client.get(home, {"archived": "1"}).content.decode()
    )


def test_the_commands_change_log_and_name_bad_input(classifier, researcher_owner, capsys):
    study = make_study(classifier)
    call_command(
        "study_lifecycle", study.slug, "pause", "--reason", "typo", "--by", "researcher_owner"
    )
    assert "is now paused" in capsys.readouterr().out
    call_command("set_quota", study.slug, "30", "--condition", "gradcam")
    event = study.events.order_by("pk").last()
    assert event.detail == {"condition": "gradcam", "from": None, "to": 30} and event.actor is None
    assert study.events.order_by("pk").first().actor == researcher_owner
    with pytest.raises(CommandError, match="a paused study cannot be paused"):
        call_command("study_lifecycle", study.slug, "pause")
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("study_lifecycle", study.slug, "explode")
    with pytest.raises(CommandError, match="--by: no user named 'nobody'"):
        call_command("study_lifecycle", study.slug, "resume", "--by", "nobody")
    with pytest.raises(CommandError, match="not in 1..100000"):
        call_command("set_quota", study.slug, "100000000000")
    with pytest.raises(CommandError, match="expected a whole number"):
        call_command("set_quota", study.slug, "1e11")
    assert study.events.count() == 2
