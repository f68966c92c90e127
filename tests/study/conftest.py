import pytest

from explain_engine.models import Image
from explain_engine.tasks import precompute_job_run
from study.design.creation import study_create, study_precompute_job
from study.design.launch import study_launch
from study.design.spec import ConditionSpec, StudySpec
from study.models import Study


def make_study(
    classifier,
    *,
    slug="gulls",
    platform=Study.Platform.PROLIFIC,
    per_condition=10,
    n_items=4,
    launch=True,
    question_type="species_identification",
    n_training=0,
    n_attention=0,
    comprehension_questions=(),
    owners=(),
    exclusion_rules=None,
    consent_text="Consent text v1",
    status=Study.Status.LIVE,
    shortcut_margin_points=100,
):
    test_images = list(classifier.image_set.images.filter(split=Image.Split.TEST).order_by("pk"))
    images = test_images[:n_items]
    training_images = test_images[n_items : n_items + n_training]
    attention_images = test_images[n_items + n_training : n_items + n_training + n_attention]
    study = study_create(
        StudySpec(
            slug=slug,
            title="Which gull?",
            classifier=classifier,
            platform=platform,
            conditions=[
                ConditionSpec(name="none"),
                ConditionSpec(name="gradcam", explanation_method="gradcam"),
            ],
            main_images=images,
            participants_per_condition=per_condition,
            consent_text=consent_text,
            instructions_text="Pick the species.",
            completion_code="C0DE42",
            question_type=question_type,
            training_images=training_images,
            attention_images=attention_images,
            comprehension_questions=comprehension_questions,
            owners=owners,
            exclusion_rules=exclusion_rules,
            # A handful of items always beats chance somewhere (one photo of four species
            # is 25% for "always that one"): the audit is tested on designs built for it
            # (test_shortcut_audit_launch), not on these.
            shortcut_margin_points=shortcut_margin_points,
        )
    )
    if launch:
        precompute_job_run.delay(study_precompute_job(study=study).pk)
        study_launch(study=study, status=status)
    return study


@pytest.fixture
def study(classifier):
    return make_study(classifier)


def report_line(request, line: str) -> None:
    """Write `line` to the terminal summary from a module fixture's teardown (the fuzzers'
    counts), whose output is otherwise captured and dropped."""
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(line)
