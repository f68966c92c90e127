"""Inputs that once gave a server error, or were accepted where they should be refused: each
gets the 400 page (or a one-line command error), and nothing saved changes."""

import pytest
from django.core.management import CommandError, call_command
from django.forms.models import model_to_dict
from django.urls import reverse

from study.models import Participant, Response, Study
from tests.study.conftest import make_study

pytestmark = pytest.mark.django_db

HUGE_NUMBERS = ["inf", "-inf", "nan", "1e400", "9" * 400, "-" + "9" * 400, "9" * 5000]


def _saved(study) -> list:
    return [
        [model_to_dict(p) for p in Participant.objects.filter(study=study).order_by("pk")],
        [model_to_dict(r) for r in Response.objects.order_by("pk")],
    ]


def _in_trials(client, study):
    url = client.get(
        reverse("study:entry", args=[study.slug]),
        {"js": "1", "PROLIFIC_PID": "limits", "STUDY_ID": "s", "SESSION_ID": "x"},
    )["Location"]
    client.post(url, {"page": "consent", "consent": "yes"})
    client.post(url, {"page": "instructions"})
    return url, client.get(url).context["trial"]


def _answer(trial, **fields):
    return {
        "page": "trials",
        "trial_position": trial.position,
        "answer": trial.choices[0].value,
        "confidence": 3,
        "client_response_ms": 900,
        **fields,
    }


@pytest.mark.parametrize("value", HUGE_NUMBERS)
def test_a_non_finite_or_huge_response_time_is_refused(client, study, value):
    url, trial = _in_trials(client, study)
    before = _saved(study)
    response = client.post(url, _answer(trial, client_response_ms=value))
    assert response.status_code == 400
    assert "client_response_ms" in response.content.decode()
    assert _saved(study) == before


@pytest.mark.parametrize("field", ["trial_position", "confidence"])
@pytest.mark.parametrize("value", HUGE_NUMBERS + ["-1", "1.5", "\u0663"])
def test_integer_fields_out_of_range_are_refused(client, study, field, value):
    url, trial = _in_trials(client, study)
    before = _saved(study)
    response = client.post(url, _answer(trial, **{field: value}))
    assert response.status_code == 400
    assert _saved(study) == before


@pytest.mark.parametrize(
    "interactions",
    [
        "[" * 3000 + "]" * 3000,
        '{"a":' * 5000 + "1" + "}" * 5000,
        "[" * 3000,  # not even closed
        '[{"event": "heatmap_shown", "ms": NaN}]',
        '[{"event": "heatmap_shown", "ms": Infinity}]',
        '[{"event": "heatmap_shown", "ms": ' + "9" * 5000 + "}]",
        "[" + ",".join(['{"event": "heatmap_shown", "ms": 1}'] * 1000) + "]",
    ],
    ids=["3000-lists", "5000-objects", "unclosed", "nan", "infinity", "5000-digits", "too-long"],
)
def test_over_deep_or_oversized_interactions_are_refused(client, study, interactions):
    url, trial = _in_trials(client, study)
    before = _saved(study)
    response = client.post(url, _answer(trial, interactions=interactions))
    assert response.status_code == 400
    assert "interactions" in response.content.decode()
    assert _saved(study) == before


def test_a_well_formed_answer_still_saves_with_its_interactions(client, study):
    url, trial = _in_trials(client, study)
    events = '[{"event": "heatmap_hidden", "ms": 5}, {"event": "heatmap_shown", "ms": 9}]'
    response = client.post(url, _answer(trial, client_response_ms="1234.6", interactions=events))
    assert response.status_code == 302
    saved = Response.objects.get()
    assert saved.client_response_ms == 1234
    assert saved.interactions == [
        {"event": "heatmap_hidden", "ms": 5},
        {"event": "heatmap_shown", "ms": 9},
    ]


@pytest.mark.parametrize("value", ["1e400", "9" * 5000, "inf", "7", "-1", ""])
def test_comprehension_answers_that_are_no_choice_are_refused(client, classifier, value):
    study = make_study(
        classifier,
        comprehension_questions=[{"question": "Birds?", "choices": ["no", "yes"], "answer": 1}],
    )
    url = client.get(reverse("study:entry", args=[study.slug]), {"js": "1", "PROLIFIC_PID": "c"})[
        "Location"
    ]
    client.post(url, {"page": "consent", "consent": "yes"})
    client.post(url, {"page": "instructions"})
    before = _saved(study)
    response = client.post(url, {"page": "comprehension", "q0": value})
    assert response.status_code == 400
    assert _saved(study) == before


STUDY_FILE = """
slug = "{slug}"
title = "Limits"
classifier = "tiny-classifier"
platform = "prolific"
participants_per_condition = {per_condition}
time_limit_minutes = {time_limit}

[items]
per_class = 1

[texts]
consent = "ok"
instructions = "ok"

[[conditions]]
name = "none"
{quota}
"""


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"slug": "Walk Bad Slug!"}, "slug"),
        ({"slug": "x" * 61}, "slug"),
        ({"quota": "quota = 100000000000"}, "quota"),
        ({"quota": "quota = 0"}, "quota"),
        ({"time_limit": 100000000}, "time_limit_minutes"),
        ({"per_condition": 100000000000}, "participants_per_condition"),
        ({"per_condition": 9223372036854775807}, "participants_per_condition"),
    ],
)
def test_study_files_with_a_bad_slug_or_out_of_range_numbers_are_refused(
    classifier, tmp_path, client, researcher_a, values, message
):
    fields = {"slug": "limits", "per_condition": 10, "time_limit": 60, "quota": "", **values}
    path = tmp_path / "study.toml"
    path.write_text(STUDY_FILE.format(**fields))
    with pytest.raises(CommandError, match=message):
        call_command("create_study", "--from", str(path))
    assert not Study.objects.exists()
    client.force_login(researcher_a)
    assert client.get(reverse("researcher-home")).status_code == 200


def test_a_study_file_within_the_limits_is_accepted(classifier, tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(
        STUDY_FILE.format(slug="limits", per_condition=100000, time_limit=10080, quota="quota = 5")
    )
    call_command("create_study", "--from", str(path))
    assert Study.objects.get().conditions.get().quota == 5


@pytest.mark.parametrize(
    ("view", "form"),
    [
        ("researcher-launch", {"status": "closed"}),
        ("researcher-launch", {}),
        ("researcher-show-accuracy", {"show": "maybe"}),
        ("researcher-show-accuracy", {}),
    ],
)
def test_researcher_posts_outside_their_choices_are_refused(
    client, classifier, researcher_owner, view, form
):
    study = make_study(classifier, launch=False, owners=[researcher_owner])
    client.force_login(researcher_owner)
    before = model_to_dict(Study.objects.get(), exclude=["owners", "excluded_studies"])
    response = client.post(reverse(view, args=[study.slug]), form)
    assert response.status_code == 400
    assert model_to_dict(Study.objects.get(), exclude=["owners", "excluded_studies"]) == before
