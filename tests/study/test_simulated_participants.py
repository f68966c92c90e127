"""Simulated participants are flagged, kept out of live studies unless asked, and deletable."""

import pytest
from django.core.management import CommandError, call_command

from study.models import Participant, Response, SimulatedDeletion, Study
from study.results.rows import study_export_rows, study_participant_rows
from tests.study.conftest import make_study
from tests.study.test_export import finish

pytestmark = pytest.mark.django_db


def test_simulate_refuses_a_live_study_without_allow_live_and_a_negative_n(classifier):
    study = make_study(classifier)
    assert study.status == Study.Status.LIVE
    with pytest.raises(CommandError) as refused:
        call_command("simulate_participants", study.slug, "--n", "2")
    assert str(refused.value) == (
        "study 'gulls' is live: simulated participants would take its places; "
        "pass --allow-live to run them anyway"
    )
    with pytest.raises(CommandError) as negative:
        call_command("simulate_participants", study.slug, "--allow-live", "--n", "-3")
    assert str(negative.value) == "--n must be at least 1, not -3"
    assert not Participant.objects.exists()


def test_bots_are_flagged_in_the_database_and_every_export(client, classifier):
    study = make_study(classifier, status=Study.Status.PILOT)
    call_command("simulate_participants", study.slug, "--n", "2")  # a pilot: no flag needed
    finish(client, study, "a-person")
    flags = dict(Participant.objects.values_list("platform_identity__worker_id", "simulated"))
    assert flags == {"bot-0-0": True, "bot-0-1": True, "a-person": False}
    person = Participant.objects.get(simulated=False).pk
    response_flags = {
        (row["participant"] == person, row["participant_simulated"])
        for row in study_export_rows(study=study)
    }
    assert response_flags == {(True, 0), (False, 1)}
    participant_flags = {
        (row["participant"] == person, row["participant_simulated"])
        for row in study_participant_rows(study=study)
    }
    assert participant_flags == {(True, 0), (False, 1)}


def test_the_researcher_deletes_the_bots_with_an_audit_entry(client, classifier, capsys):
    study = make_study(classifier, status=Study.Status.PILOT)
    call_command("simulate_participants", study.slug, "--n", "2")
    finish(client, study, "a-person")
    person_answers = Response.objects.filter(participant__simulated=False).count()
    bot_answers = Response.objects.filter(participant__simulated=True).count()
    assert person_answers and bot_answers

    call_command("delete_simulated_participants", study.slug, "--reason", "pilot bots")
    assert "deleted 2 simulated participants" in capsys.readouterr().out
    assert list(Participant.objects.values_list("simulated", flat=True)) == [False]
    assert Response.objects.count() == person_answers
    entry = SimulatedDeletion.objects.get()
    assert (entry.study, entry.participants_deleted, entry.responses_deleted, entry.reason) == (
        study,
        2,
        bot_answers,
        "pilot bots",
    )
    with pytest.raises(CommandError, match="has no simulated participants"):
        call_command("delete_simulated_participants", study.slug)
    assert SimulatedDeletion.objects.count() == 1


def test_the_owner_deletes_the_bots_from_the_dashboard_typing_the_slug(
    client, classifier, researcher_owner, researcher_b
):
    """Only an owner may, only with the slug typed; only bots go, and the study log on the
    dashboard shows the entry with who did it and the count."""
    from study.models import StudyEvent

    study = make_study(classifier, status=Study.Status.PILOT, owners=[researcher_owner])
    call_command("simulate_participants", study.slug, "--n", "2")
    finish(client, study, "a-person")
    person_answers = Response.objects.filter(participant__simulated=False).count()
    bot_answers = Response.objects.filter(participant__simulated=True).count()
    url = f"/researcher/studies/{study.slug}/simulated/delete"
    before = (Participant.objects.count(), Response.objects.count())

    client.force_login(researcher_b)  # owns nothing: the study is not found
    assert client.post(url, {"confirm": study.slug}).status_code == 404
    client.force_login(researcher_owner)
    assert client.get(url).status_code == 405
    refused = client.post(url, {"confirm": "not-the-slug"})
    assert refused.status_code == 400 and f"type {study.slug}" in refused.content.decode()
    assert (Participant.objects.count(), Response.objects.count()) == before
    assert not SimulatedDeletion.objects.exists() and not StudyEvent.objects.exists()

    page = client.get(f"/researcher/studies/{study.slug}/").content.decode()
    assert "2 simulated participant(s)" in page and 'action="' + url + '"' in page
    done = client.post(url, {"confirm": study.slug, "reason": "pilot bots"}, follow=True)
    page = done.content.decode()
    assert f"Deleted 2 simulated participant(s) and {bot_answers} answer(s)" in page
    assert list(Participant.objects.values_list("simulated", flat=True)) == [False]
    assert Response.objects.count() == person_answers
    event = StudyEvent.objects.get()
    assert (event.action, event.actor, event.reason, event.detail["participants_deleted"]) == (
        "delete_simulated",
        researcher_owner,
        "pilot bots",
        2,
    )
    assert SimulatedDeletion.objects.get().pk == event.detail["simulated_deletion"]
    assert (
        f"simulated participants deleted (2 participant(s), {bot_answers} answer(s)) by "
        "researcher_owner: “pilot bots”"
    ) in page
    assert "simulated participant(s) (from" not in page  # none left to delete


def test_a_staff_researcher_who_does_not_own_the_study_is_refused(client, classifier, researcher_a):
    study = make_study(classifier, status=Study.Status.PILOT)
    call_command("simulate_participants", study.slug, "--n", "1")
    client.force_login(researcher_a)  # staff: sees every study, owns none
    response = client.post(
        f"/researcher/studies/{study.slug}/simulated/delete", {"confirm": "gulls"}
    )
    assert response.status_code == 403
    assert Participant.objects.filter(simulated=True).count() == 1
    assert not SimulatedDeletion.objects.exists()
