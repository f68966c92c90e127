"""`plan_study SLUG`: the study's own design, simulated through its analysis."""

import pytest
from django.core.management import CommandError, call_command

from study.researcher.plans import study_plan_design
from tests.study.conftest import make_study

pytestmark = pytest.mark.django_db


def test_plan_reads_the_study_design_and_prints_power_per_test(classifier, capsys):
    study = make_study(
        classifier,
        launch=False,
        n_items=6,
        n_attention=2,
        exclusion_rules={"max_failed_attention_checks": 1},
    )
    design = study_plan_design(study=study)
    assert design.conditions == ("none", "gradcam")
    assert (design.main_items, design.attention_items, design.n_choices) == (6, 2, 8)
    assert design.exclusion_rules == {"max_failed_attention_checks": 1}
    assert design.planned_n == 10
    call_command(
        "plan_study",
        study.slug,
        "--baseline",
        "0.4",
        "--difference",
        "0.3",
        "--sims",
        "20",
        "--n",
        "8",
        "16",
    )
    out = capsys.readouterr().out
    assert "Planted accuracy: none 40%, gradcam 70%." in out
    assert "none vs gradcam" in out
    assert "Participants per condition for 80% power:" in out


def test_plan_command_names_bad_input(classifier):
    study = make_study(classifier, launch=False)
    with pytest.raises(CommandError, match="no study with slug 'nope'"):
        call_command("plan_study", "nope", "--baseline", "0.5", "--difference", "0.1")
    with pytest.raises(CommandError, match="give either --accuracy"):
        call_command("plan_study", study.slug)
    with pytest.raises(CommandError, match="no planted accuracy for gradcam"):
        call_command("plan_study", study.slug, "--accuracy", "none=0.5")
    with pytest.raises(CommandError, match="expected CONDITION=NUMBER"):
        call_command("plan_study", study.slug, "--accuracy", "none=high", "gradcam=0.5")
    with pytest.raises(CommandError, match="sims: 1 is not in 10..5000"):
        call_command(
            "plan_study", study.slug, "--accuracy", "none=0.5", "gradcam=0.6", "--sims", "1"
        )
