"""The participant pages' database work per request: a fixed budget, whatever the study's size.

Every trial page and every answer runs these queries for each of hundreds of participants at
once; the budget keeps an innocent-looking template change or lazy relation from multiplying
them (the load benchmark, benchmarks/load_participants.py, measures what they cost)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from explain_engine.models import ClassLabel
from study.design.frozen import study_choices
from study.flow.selectors import reference_gallery
from study.models import Participant
from tests.study.conftest import make_study

pytestmark = pytest.mark.django_db

# As counted in a test, where a transaction is a savepoint. Participant views run outside
# a request-wide transaction: a trial page is the participant and the stamp of when the trial
# was first shown; an answer is the participant, then one transaction (savepoint, the
# participant under lock, the response, the participant's progress, release).
# Everything else (items, predictions, explanations, choices) is the launched study's
# snapshot (study/design/frozen.py).
TRIAL_PAGE_QUERIES = 2
ANSWER_QUERIES = 6


def _gradcam_participant_url(client, study) -> str:
    """Two entrants fill both conditions; the one shown Grad-CAM does the most work."""
    for pid in ("first", "second"):
        client.get(
            reverse("study:entry", args=[study.slug]),
            {"js": "1", "PROLIFIC_PID": pid, "STUDY_ID": "s", "SESSION_ID": pid},
        )
    participant = Participant.objects.get(condition__name="gradcam")
    url = reverse("study:participant", args=[study.slug, participant.code])
    client.post(url, {"page": "consent", "consent": "yes"})
    client.post(url, {"page": "instructions"})
    return url


@pytest.mark.parametrize("n_items", [3, 8])
def test_a_trial_page_and_an_answer_stay_within_their_query_budget(client, classifier, n_items):
    study = make_study(classifier, n_items=n_items)
    url = _gradcam_participant_url(client, study)
    client.get(url)  # the first page reads the launched study's snapshot
    for _ in range(n_items - 1):
        with CaptureQueriesContext(connection) as page:
            trial = client.get(url).context["trial"]
        assert trial.explanation is not None
        assert len(page) <= TRIAL_PAGE_QUERIES, "\n".join(q["sql"][:150] for q in page)
        form = {
            "page": "trials",
            "trial_position": trial.position,
            "answer": trial.choices[0].value,
            "confidence": 3,
        }
        with CaptureQueriesContext(connection) as answer:
            assert client.post(url, form).status_code == 302
        assert len(answer) <= ANSWER_QUERIES, "\n".join(q["sql"][:150] for q in answer)


def test_a_draft_shows_a_renamed_species_at_once(classifier):
    study = make_study(classifier, launch=False)
    before = study_choices(study)
    label = ClassLabel.objects.get(pk=int(before[0].value))
    label.display_name = "Renamed gull"
    label.save()
    assert study_choices(study)[0].text == "Renamed gull"
    assert reference_gallery(study=study)[0].label_text == "Renamed gull"
