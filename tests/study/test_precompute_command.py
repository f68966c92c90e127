"""`precompute`: a study's conditions, or a classifier's images with named methods."""

import pytest
from django.core.management import CommandError, call_command

from explain_engine.methods import get_method
from explain_engine.models import Explanation, PrecomputeJob
from study.design.launch import study_launch
from tests.study.conftest import make_study

pytestmark = pytest.mark.django_db


def test_precompute_command_waits_and_reports(classifier, capsys):
    call_command("precompute", "--classifier", classifier.name, "--methods", "gradcam")
    test_images = classifier.image_set.images.filter(split="test").count()
    assert Explanation.objects.filter(status="done").count() == test_images
    assert f"{test_images} images × ['gradcam']" in capsys.readouterr().out
    call_command("precompute", "--classifier", classifier.name, "--methods", "gradcam", "--wait")
    assert "0/0 done, 0 failed" in capsys.readouterr().out


def test_precompute_command_shows_a_progress_bar_in_process(classifier, capsys):
    call_command(
        "precompute", "--classifier", classifier.name, "--methods", "gradcam", "--batch-size", "3"
    )
    test_images = classifier.image_set.images.filter(split="test").count()
    out = capsys.readouterr().out
    assert f"[{'#' * 30}] {test_images}/{test_images} done, 0 failed" in out
    assert out.count("\r[") >= test_images // 3  # redrawn after each batch
    assert PrecomputeJob.objects.get().batch_size == 3


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--methods", "nope"], "unknown explanation method 'nope'"),
        (["--methods", "gradcam", "--params", "{bad"], "--params is not JSON"),
        (["--methods", "gradcam", "--params", '{"gradcam": {"size": 3}}'], "unknown parameter"),
        (["--methods", "gradcam", "--batch-size", "0"], "--batch-size must be at least 1"),
    ],
)
def test_precompute_command_errors(classifier, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("precompute", "--classifier", classifier.name, *arguments)
    assert not Explanation.objects.exists()


def test_precompute_study_uses_each_condition_s_own_parameters(classifier, capsys):
    study = make_study(classifier, launch=False)
    condition = study.conditions.get(name="gradcam")
    explicit = get_method("gradcam", target_layer="features")
    condition.explanation_params = explicit.params()
    condition.explanation_params_hash = explicit.params_hash()
    condition.save()
    call_command("precompute", "--study", study.slug, "--wait")
    done = Explanation.objects.filter(status="done")
    assert done.count() == study.items.count()
    assert {e.params["target_layer"] for e in done} == {"features"}
    assert PrecomputeJob.objects.get().status == "done"
    study_launch(study=study)  # every condition now has what it shows


def test_precompute_needs_a_target(classifier):
    with pytest.raises(CommandError, match="no study with slug 'nope'"):
        call_command("precompute", "--study", "nope")
    with pytest.raises(CommandError, match="--classifier needs --methods"):
        call_command("precompute", "--classifier", classifier.name)
    with pytest.raises(CommandError, match="one of the arguments --study --classifier"):
        call_command("precompute")
