"""The server's clock is the authority on response times; no place without JavaScript."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import F
from django.urls import reverse

from study.models import Condition, Participant, Response
from study.results import timing
from study.results.rows import study_export_rows, study_participant_rows
from tests.study.conftest import make_study
from tests.study.test_participant_flow import PROLIFIC_QUERY, QUESTIONNAIRE, enter, post

SHOWN = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_client_time_refines_the_server_time_only_when_consistent():
    server = timing.server_response_ms(SHOWN, SHOWN + timedelta(milliseconds=2500))
    assert server == 2500
    assert timing.response_ms(1800, server) == 1800  # the network and loading left out
    assert timing.response_ms(2500, server) == 2500
    assert timing.response_ms(5000, server) == 2500  # longer than possible: forged
    assert timing.response_ms(None, server) == 2500  # no script, or a field left out
    assert not timing.client_time_consistent(None, server)
    assert not timing.client_time_consistent(2501, server)


@pytest.mark.django_db
def test_a_bot_that_reports_5000_ms_but_answers_in_100_is_excluded(client, classifier):
    study = make_study(classifier, exclusion_rules={"min_median_response_ms": 800})
    url = enter(client, study, pid="bot")
    post(client, url, page="consent", consent="yes")
    post(client, url, page="instructions")
    participant = Participant.objects.get()
    for _ in participant.trial_item_ids:
        trial = client.get(url).context["trial"]
        # The server sent the trial 100 ms before the answer arrives.
        Participant.objects.filter(pk=participant.pk).update(
            trial_shown_at=F("trial_shown_at") - timedelta(milliseconds=100)
        )
        post(
            client,
            url,
            page="trials",
            trial_position=trial.position,
            answer=trial.choices[0].value,
            confidence=3,
            client_response_ms=5000,
        )
    client.post(url, QUESTIONNAIRE)
    participant.refresh_from_db()
    assert participant.status == Participant.Status.COMPLETED
    assert participant.excluded is True
    assert len(participant.exclusion_reasons) == 1
    assert participant.exclusion_reasons[0].startswith("median response time 1")
    assert participant.exclusion_reasons[0].endswith("ms (below 800 ms)")

    rows = list(study_export_rows(study=study))
    assert len(rows) == len(participant.trial_item_ids)
    assert {row["client_time_inconsistent"] for row in rows} == {1}
    assert {row["client_response_ms"] for row in rows} == {5000}
    assert max(row["response_ms"] for row in rows) < 800
    assert {row["response_ms"] == row["server_response_ms"] for row in rows} == {True}
    (summary,) = study_participant_rows(study=study)
    assert summary["median_response_ms"] < 800
    # The excluded bot frees its place: another participant could take it.
    assert not Condition.objects.filter(participants__excluded=False).exists()


@pytest.mark.django_db
def test_a_consistent_client_time_is_the_one_used(client, classifier):
    study = make_study(classifier, exclusion_rules={"min_median_response_ms": 800})
    url = enter(client, study, pid="person")
    post(client, url, page="consent", consent="yes")
    post(client, url, page="instructions")
    participant = Participant.objects.get()
    trial = client.get(url).context["trial"]
    Participant.objects.filter(pk=participant.pk).update(
        trial_shown_at=F("trial_shown_at") - timedelta(seconds=3)
    )
    post(
        client,
        url,
        page="trials",
        trial_position=trial.position,
        answer=trial.choices[0].value,
        confidence=3,
        client_response_ms=2100,
    )
    (row,) = study_export_rows(study=study)
    assert row["server_response_ms"] >= 3000
    assert row["response_ms"] == 2100 and row["client_time_inconsistent"] == 0


@pytest.mark.django_db
def test_without_javascript_the_entry_asks_for_it_and_takes_no_place(client, classifier):
    study = make_study(classifier, per_condition=1)
    entry = reverse("study:entry", args=[study.slug])
    query = {key: value for key, value in PROLIFIC_QUERY.items() if key != "js"}
    for pid in ("no-script-1", "no-script-2", "no-script-3"):
        page = client.get(entry, {**query, "PROLIFIC_PID": pid})
        assert page.status_code == 200
        html = page.content.decode()
        assert "<noscript>" in html and "This study needs JavaScript" in html
        assert "no place has" in html and "js/entry.js" in html
    assert not Participant.objects.exists() and not Response.objects.exists()
    # Both places are still free: two browsers with scripts take them.
    enter(client, study, pid="with-script-1")
    enter(client, study, pid="with-script-2")
    assert sorted(Participant.objects.values_list("condition__name", flat=True)) == [
        "gradcam",
        "none",
    ]
