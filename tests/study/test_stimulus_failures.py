"""An answer given while a stimulus was not shown is stored flagged; Next waits for the script."""

import pytest

from study.models import Participant, Response
from study.results.rows import study_export_rows
from tests.study.test_participant_flow import enter, post

pytestmark = pytest.mark.django_db


def _at_first_trial(client, study):
    url = enter(client, study, pid="flaky-connection")
    post(client, url, page="consent", consent="yes")
    post(client, url, page="instructions")
    return url


def _answer(client, url, **extra):
    trial = client.get(url).context["trial"]
    form = {
        "page": "trials",
        "trial_position": trial.position,
        "answer": trial.choices[0].value,
        "confidence": 3,
        **extra,
    }
    return client.post(url, form)


def test_next_is_disabled_in_the_html_until_the_script_enables_it(client, study):
    url = _at_first_trial(client, study)
    html = client.get(url).content.decode()
    assert '<button type="submit" class="primary" disabled>Next</button>' in html
    assert 'name="stimulus_missing" value="0"' in html


def test_an_answer_without_its_stimulus_is_flagged_in_the_export(client, study):
    url = _at_first_trial(client, study)
    assert _answer(client, url, stimulus_missing="1").status_code == 302
    assert _answer(client, url, stimulus_missing="0").status_code == 302
    assert _answer(client, url).status_code == 302  # an older page without the field
    flags = list(
        Response.objects.order_by("trial_position").values_list("stimulus_missing", flat=True)
    )
    assert flags == [True, False, False]
    rows = sorted(study_export_rows(study=study), key=lambda row: row["trial_position"])
    assert [row["stimulus_missing"] for row in rows] == [1, 0, 0]


def test_a_forged_flag_is_refused_and_saves_nothing(client, study):
    url = _at_first_trial(client, study)
    response = _answer(client, url, stimulus_missing="yes")
    assert response.status_code == 400 and "stimulus_missing" in response.content.decode()
    assert not Response.objects.exists()
    assert Participant.objects.get().trial_position == 0
