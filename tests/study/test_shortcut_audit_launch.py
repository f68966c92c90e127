"""The shortcut audit at launch: a planted design where "always the larger picture" wins is
refused, the researcher may override it with a reason, and the reason is in design.json."""

import hashlib
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from explain_engine.models import Explanation
from explain_engine.tasks import precompute_job_run
from study.design.creation import study_precompute_job
from study.design.launch import study_launch, study_shortcut_audit
from study.design.spec import StudyConfigError
from study.models import Study, StudyItem
from study.results.exports import study_design_document
from tests.study.conftest import make_study

pytestmark = pytest.mark.django_db


def _planted(classifier, *, larger_is_right):
    """A comparative study whose items' A/B pairs are planted: the right answer alternates
    A, B, A, B, and the right picture shows more of the photo (or, with `larger_is_right`
    false, in half of the items)."""
    study = make_study(
        classifier,
        slug="planted",
        question_type="sag_comparative",
        launch=False,
        shortcut_margin_points=10,
    )
    precompute_job_run.delay(study_precompute_job(study=study).pk)
    main_images = study.items.filter(role=StudyItem.Role.MAIN).values_list("image_id", flat=True)
    searches = Explanation.objects.filter(method="sag", image_id__in=main_images).order_by("pk")
    assert searches.count() == len(main_images) == 4
    for index, search in enumerate(searches):
        answer = "AB"[index % 2]
        bigger, smaller = [0, 1, 2, 3], [4, 5, 6]
        right_is_bigger = larger_is_right or index < 2
        right, wrong = (bigger, smaller) if right_is_bigger else (smaller, bigger)
        a, b = (right, wrong) if answer == "A" else (wrong, right)
        search.data = {
            **search.data,
            "pairs": [
                {
                    "a_node": 0,
                    "b_node": 1,
                    "a_patches": a,
                    "b_patches": b,
                    "a_probability": 0.9 if answer == "A" else 0.4,
                    "b_probability": 0.4 if answer == "A" else 0.9,
                    "gap": 50.0,
                    "answer": answer,
                    "kind": "larger_more_confident"
                    if right_is_bigger
                    else "smaller_more_confident",
                }
            ],
        }
        search.save(update_fields=["data"])
    return study


def _rows(report):
    return {(row.strategy, row.condition): round(row.accuracy, 3) for row in report.rows}


def test_a_design_the_larger_picture_answers_is_refused_at_launch(classifier):
    study = _planted(classifier, larger_is_right=True)
    rows = _rows(study_shortcut_audit(study=study))
    assert rows[("the larger picture", "")] == 1.0
    assert rows[("always Image A", "")] == rows[("always Image B", "")] == 0.5
    with pytest.raises(StudyConfigError) as refused:
        study_launch(study=study)
    message = str(refused.value)
    assert "the larger picture: 100.0% (chance 50.0%, +50.0 points)" in message
    assert "always Image A" not in message  # only the strategies that fail are named
    study.refresh_from_db()
    assert study.status == Study.Status.DRAFT and not study.config_hash


def test_a_balanced_design_launches(classifier):
    study = _planted(classifier, larger_is_right=False)
    assert _rows(study_shortcut_audit(study=study))[("the larger picture", "")] == 0.5
    assert study_launch(study=study).status == Study.Status.LIVE


def test_the_override_reason_is_frozen_into_the_design(classifier):
    study = _planted(classifier, larger_is_right=True)
    reason = "Replicating Shitole et al.: pairs as published, the shortcut is analysed."
    study_launch(study=study, shortcut_override_reason=reason)
    study.refresh_from_db()
    assert study.status == Study.Status.LIVE and study.shortcut_override_reason == reason
    design = study_design_document(study=study)
    assert design["config_hash"] == study.config_hash  # the reason is part of the hash
    frozen = json.dumps(design["design"], sort_keys=True, separators=(",", ":"))
    assert hashlib.sha256(frozen.encode()).hexdigest() == study.config_hash
    assert design["design"]["shortcut_audit"] == {"margin_points": 10, "override_reason": reason}


def test_the_dashboard_shows_the_audit_and_takes_the_reason(client, classifier, researcher_owner):
    study = _planted(classifier, larger_is_right=True)
    study.owners.add(researcher_owner)
    client.force_login(researcher_owner)
    page = client.get(reverse("researcher-study", args=[study.slug])).content.decode()
    assert "Shortcut audit" in page and "the larger picture" in page and "(too many)" in page
    assert 'name="shortcut_override_reason"' in page
    launch = reverse("researcher-launch", args=[study.slug])
    client.post(launch, {"status": "live"})
    page = client.get(reverse("researcher-study", args=[study.slug])).content.decode()
    assert "cannot launch: the shortcut audit" in page
    client.post(launch, {"status": "live", "shortcut_override_reason": "pairs as published"})
    study.refresh_from_db()
    assert study.status == Study.Status.LIVE
    assert study.shortcut_override_reason == "pairs as published"


def test_the_command_prints_the_table_and_the_verdict(classifier, capsys):
    study = _planted(classifier, larger_is_right=True)
    call_command("shortcut_audit", study.slug)
    out = capsys.readouterr().out
    assert "the larger picture: 100.0% (chance 50.0%, +50.0 points)" in out
    assert out.strip().endswith("planted: the shortcut audit fails: the larger picture")
    # each item's planted search keeps one pair, of the kind the larger right picture gives
    assert "0 of 4 items without one" in out
    assert out.count("valid (0 / 1 / 0)") == 4
    assert "Drawn for the main items: smaller_more_confident 0, larger_more_confident 4" in out
    with pytest.raises(CommandError, match="no study with slug 'nope'"):
        call_command("shortcut_audit", "nope")


def test_the_larger_picture_is_the_one_showing_more_of_the_photo_not_more_patches(classifier):
    """Two corner patches show half a patch's worth of the photo (each patch is a bilinear
    tent, cut by the border), one inner patch a whole one: the inner one is the larger
    picture, as the pair's kind says, though it has fewer patches."""
    study = _planted(classifier, larger_is_right=True)
    main_images = study.items.filter(role=StudyItem.Role.MAIN).values_list("image_id", flat=True)
    for index, search in enumerate(
        Explanation.objects.filter(method="sag", image_id__in=main_images).order_by("pk")
    ):
        answer = "AB"[index % 2]
        inner, corners = [24], [0, 6]  # right: the inner patch, which shows more
        a, b = (inner, corners) if answer == "A" else (corners, inner)
        pair = {**search.data["pairs"][0], "a_patches": a, "b_patches": b}
        search.data = {**search.data, "pairs": [pair]}
        search.save(update_fields=["data"])
    rows = _rows(study_shortcut_audit(study=study))
    assert rows[("the larger picture", "")] == 1.0
    with pytest.raises(StudyConfigError, match="the larger picture: 100.0%"):
        study_launch(study=study)
