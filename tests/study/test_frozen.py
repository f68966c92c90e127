"""The launched study's snapshot and the participants' assignments: read once per process, never
standing for another design."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from explain_engine.models import ClassLabel, Explanation
from study.design import frozen
from study.design.frozen import frozen_study, frozen_study_by_hash
from study.flow.entry import participant_enter
from study.flow.stimulus_tokens import stimulus_url
from study.models import Study
from tests.study.conftest import make_study

pytestmark = pytest.mark.django_db


def _queries(function) -> int:
    with CaptureQueriesContext(connection) as captured:
        function()
    return len(captured)


def test_a_launched_study_is_read_from_the_database_once(classifier):
    study = make_study(classifier, n_items=3, n_attention=1)
    snapshot = frozen_study(study)
    assert _queries(lambda: frozen_study(study)) == 0
    assert frozen_study(study) is snapshot
    gradcam = study.conditions.get(name="gradcam")
    assert len(snapshot.items) == 4
    for item in snapshot.items.values():
        shown = snapshot.explanations[(gradcam.pk, item.image_id)]
        assert shown.status == Explanation.Status.DONE
        assert shown.target_index == snapshot.predictions[item.image_id].predicted_index
        assert snapshot.correct_answers[item.pk] is not None
    assert not any(condition_id != gradcam.pk for condition_id, _ in snapshot.explanations)


def test_the_snapshot_keeps_the_launched_design(classifier):
    study = make_study(classifier)
    before = frozen_study(study).choices
    label = ClassLabel.objects.get(pk=int(before[0].value))
    label.display_name = "Renamed after launch"
    label.save()
    assert frozen_study(study).choices == before


def test_a_study_whose_design_changed_since_entry_is_read_afresh(classifier):
    study = make_study(classifier)
    participant = participant_enter(study=study, worker_id="w1")
    entered_with = participant.study_config_hash
    # An edit in the admin followed by a relaunch gives the study a new design hash.
    Study.objects.filter(pk=study.pk).update(config_hash="0" * 64)
    label = ClassLabel.objects.get(pk=int(frozen_study(study).choices[0].value))
    label.display_name = "Renamed gull"
    label.save()

    def read():
        snapshot = frozen_study_by_hash(study_id=study.pk, config_hash=entered_with)
        assert snapshot.choices[0].text == "Renamed gull"

    assert _queries(read) > 0
    assert _queries(read) > 0, "a snapshot of a design the study no longer has was kept"


def test_a_draft_is_never_kept(classifier):
    study = make_study(classifier, launch=False)
    frozen_study(study)
    assert _queries(lambda: frozen_study(study)) > 0


def test_a_process_keeps_a_bounded_number_of_snapshots(classifier, monkeypatch):
    monkeypatch.setattr(frozen, "MAX_SNAPSHOTS", 2)
    studies = [make_study(classifier, slug=f"gulls-{n}") for n in range(3)]
    for study in studies:
        frozen_study(study)
    assert _queries(lambda: frozen_study(studies[2])) == 0
    assert _queries(lambda: frozen_study(studies[1])) == 0
    assert _queries(lambda: frozen_study(studies[0])) > 0, "the least recently used was kept"


def test_two_requests_for_the_same_photo_at_once_each_get_all_of_it(client, classifier):
    # The snapshot's image instances are shared by every request of the process.
    study = make_study(classifier)
    participant = participant_enter(study=study, worker_id="w1")
    image = next(iter(frozen_study(study).items.values())).image
    url = stimulus_url(
        study_slug=study.slug, code=participant.code, kind="image", public_id=image.public_id
    )
    with image.file.storage.open(image.file.name, "rb") as handle:
        photo = handle.read()
    first, second = client.get(url), client.get(url)  # both streams open, neither read yet
    assert b"".join(first.streaming_content) == photo
    assert b"".join(second.streaming_content) == photo


def _image_url(study, participant) -> str:
    image = frozen_study(study).items[participant.trial_item_ids[0]].image
    return stimulus_url(
        study_slug=study.slug, code=participant.code, kind="image", public_id=image.public_id
    )


def test_a_participants_image_requests_are_authorized_without_a_query_once_kept(client, classifier):
    study = make_study(classifier, n_items=3)
    participant = participant_enter(study=study, worker_id="w1")
    url = _image_url(study, participant)
    assert client.get(url).status_code == 200
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    assert len(captured) == 0, [q["sql"][:120] for q in captured]


def test_a_deleted_participants_code_stops_working_once_the_kept_assignment_lapses(
    client, classifier, monkeypatch
):
    study = make_study(classifier, n_items=3)
    participant = participant_enter(study=study, worker_id="w1")
    url = _image_url(study, participant)
    assert client.get(url).status_code == 200
    participant.delete()  # as a withdrawal does
    assert client.get(url).status_code == 200, "kept for ASSIGNMENT_SECONDS"
    later = time.monotonic() + frozen.ASSIGNMENT_SECONDS + 1
    monkeypatch.setattr(frozen.time, "monotonic", lambda: later)
    assert client.get(url).status_code == 404


def test_a_process_keeps_a_bounded_number_of_assignments(classifier, monkeypatch):
    monkeypatch.setattr(frozen, "MAX_ASSIGNMENTS", 2)
    study = make_study(classifier, n_items=3)
    codes = [participant_enter(study=study, worker_id=f"w{n}").code for n in range(3)]
    for code in codes:
        frozen.participant_assignment(code)
    assert _queries(lambda: frozen.participant_assignment(codes[2])) == 0
    assert _queries(lambda: frozen.participant_assignment(codes[1])) == 0
    assert _queries(lambda: frozen.participant_assignment(codes[0])) > 0, "the oldest was kept"
