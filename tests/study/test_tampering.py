"""Two tabs, skipping ahead, forged fields and guessed codes change nothing they should not."""

import pytest
from django.urls import reverse

from study.models import Condition, Participant, Response

pytestmark = pytest.mark.django_db


def _in_trials(client, study, pid):
    url = client.get(
        reverse("study:entry", args=[study.slug]),
        {"js": "1", "PROLIFIC_PID": pid, "STUDY_ID": "s", "SESSION_ID": "x"},
    )["Location"]
    client.post(url, {"page": "consent", "consent": "yes"})
    client.post(url, {"page": "instructions"})
    return url


def _form(trial, answer, **extra):
    return {
        "page": "trials",
        "trial_position": trial.position,
        "answer": answer,
        "confidence": 3,
        "client_response_ms": 900,
        **extra,
    }


def test_two_tabs_answer_the_same_trial_once(client, study):
    url = _in_trials(client, study, "tabs")
    first_tab = client.get(url).context["trial"]
    second_tab = client.get(url).context["trial"]
    assert first_tab.position == second_tab.position
    client.post(url, _form(first_tab, first_tab.choices[0].value))
    stale = client.post(url, _form(second_tab, second_tab.choices[1].value))
    assert stale.status_code == 302  # back to where the participant really is
    response = Response.objects.get()
    assert response.answer == first_tab.choices[0].value  # the second tab changed nothing
    participant = Participant.objects.get()
    assert participant.trial_position == first_tab.position + 1


def test_answers_for_a_later_trial_are_not_recorded(client, study):
    url = _in_trials(client, study, "skipper")
    trial = client.get(url).context["trial"]
    ahead = {**_form(trial, trial.choices[0].value), "trial_position": trial.position + 2}
    client.post(url, ahead)
    assert not Response.objects.exists()
    assert Participant.objects.get().trial_position == trial.position


def test_forged_condition_fields_are_ignored(client, study):
    # One participant fills one condition; balanced assignment must then give the next
    # arrival the other one, whatever the link says.
    first = client.get(
        reverse("study:entry", args=[study.slug]),
        {"js": "1", "PROLIFIC_PID": "first", "STUDY_ID": "s", "SESSION_ID": "x"},
    )
    assert first.status_code == 302
    filled = Participant.objects.get().condition
    balanced = Condition.objects.exclude(pk=filled.pk).get(study=study)
    entry = client.get(
        reverse("study:entry", args=[study.slug]),
        {
            "js": "1",
            "PROLIFIC_PID": "forger",
            "STUDY_ID": "s",
            "SESSION_ID": "x",
            "condition": filled.pk,
            "condition_name": filled.name,
        },
    )
    url = entry["Location"]
    participant = Participant.objects.get(platform_identity__worker_id="forger")
    assert participant.condition == balanced  # not the forged one
    client.post(url, {"page": "consent", "consent": "yes", "condition": filled.pk})
    client.post(url, {"page": "instructions", "condition": filled.name})
    trial = client.get(url).context["trial"]
    client.post(url, _form(trial, trial.choices[0].value, condition=filled.pk, is_correct="1"))
    participant.refresh_from_db()
    assert participant.condition == balanced
    response = Response.objects.get()
    # Correctness is the server's judgement, not a field the browser can send.
    assert response.is_correct == (response.answer == response.correct_answer)


def test_a_guessed_participant_code_finds_nothing_and_saves_nothing(client, study):
    _in_trials(client, study, "real")
    real = Participant.objects.get()
    # Change the last character to a different one (the code may already end in "x").
    last = "y" if real.code.endswith("x") else "x"
    guessed = reverse("study:participant", args=[study.slug, real.code[:-1] + last])
    assert client.get(guessed).status_code == 404
    assert client.post(guessed, {"page": "consent", "consent": "yes"}).status_code == 404
    # Another study's slug with a real code is not that participant either.
    other = reverse("study:participant", args=["another-study", real.code])
    assert client.get(other).status_code == 404
    assert not Response.objects.exists()
