"""`demo` builds the whole path once, and a second run reuses all of it."""

import re

import pytest
from django.core.management import call_command

from explain_engine import training
from explain_engine.models import Classifier, ConceptModel, Explanation, Image, PrecomputeJob
from study.design import demo
from study.models import Study

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_demo(monkeypatch):
    monkeypatch.setattr(demo, "DEMO_PER_CLASS", 6)
    monkeypatch.setattr(demo, "DEMO_IMAGE_SIZE", 64)
    monkeypatch.setitem(training.DEMO_TRAINING, "epochs", 1)
    monkeypatch.setitem(training.DEMO_TRAINING, "input_size", 64)
    monkeypatch.setattr(
        demo,
        "DEMO_XNN",
        {"k": 3, "epochs": 2, "pretrain_epochs": 1, "max_attempts": 1, "batch_size": 8},
    )


def test_demo_sets_up_once_and_reuses_everything(small_demo, tmp_path, capsys, client):
    call_command("demo", "--no-serve", "--data-dir", str(tmp_path))
    first = capsys.readouterr().out
    study = Study.objects.get(slug="demo")
    assert study.status == Study.Status.LIVE and study.config_hash
    assert sorted(study.conditions.values_list("explanation_method", flat=True)) == [
        "",
        "gradcam",
        "igos",
        "igospp",
        "sag",
        "xnn",
    ]
    assert Image.objects.count() == 48
    assert study.items.filter(role="main").count() == 8
    assert study.items.filter(role="training").count() == 2
    assert study.items.filter(role="attention").count() == 2
    assert len(study.comprehension_questions) == 2
    methods = ["gradcam", "igos", "igospp", "sag", "xnn"]
    for method in methods:
        assert Explanation.objects.filter(method=method, status="done").count() == 12
    # The XNN concept model is fitted once, and its faithfulness is shown.
    assert ConceptModel.objects.count() == 1 and "XNN concept model: R²" in first
    assert "test accuracy" in first and "/s/demo/?PROLIFIC_PID=" in first
    # The comparative study asks only about photos whose SAG search found a clear pair, or
    # is left out when too few did (an undertrained classifier here): never a broken study.
    compare = Study.objects.filter(slug="demo-compare").first()
    if compare is None:
        assert "skipping the comparative study" in first
    else:
        assert compare.status == Study.Status.LIVE and compare.question_type == "sag_comparative"
        assert "/s/demo-compare/?PROLIFIC_PID=" in first
    created = (Study.objects.count(), PrecomputeJob.objects.count(), Explanation.objects.count())

    call_command("demo", "--no-serve", "--data-dir", str(tmp_path))
    second = capsys.readouterr().out
    assert "training" not in second and "drawing" not in second
    assert Classifier.objects.count() == 1 and ConceptModel.objects.count() == 1
    assert Image.objects.count() == 48
    assert (
        Study.objects.count(),
        PrecomputeJob.objects.count(),
        Explanation.objects.count(),
    ) == created

    password = re.search(r"password '([^']+)'", second).group(1)
    assert client.login(username="researcher", password=password)
    assert client.get("/researcher/").status_code == 200
    assert [user.username for user in study.owners.all()] == ["researcher"]
    assert client.get("/researcher/studies/demo/").status_code == 200
