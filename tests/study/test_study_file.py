"""create_study --from FILE.toml: the example file, item selection, and each kind of error."""

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from explain_engine.models import Image, Prediction
from study.models import Study, StudyItem

pytestmark = pytest.mark.django_db

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "study.toml"


@pytest.fixture
def demo_like(classifier, django_user_model):
    """The tiny classifier under the demo's name, every image in the test split (the tiny
    set has one test image per class), and known predictions: each class's first image is
    mistaken for the next class, the others are right."""
    classifier.name = "demo-classifier"
    classifier.save()
    django_user_model.objects.create_user(username="researcher", password="long-password-1")
    Image.objects.update(split=Image.Split.TEST)
    labels = {label.source_name: label for label in classifier.image_set.classes.all()}
    ordered = [labels[name] for name in classifier.class_order]
    for index, label in enumerate(ordered):
        for position, image in enumerate(label.images.order_by("source_id")):
            predicted = ordered[(index + 1) % len(ordered)] if position == 0 else label
            Prediction.objects.create(
                classifier=classifier,
                image=image,
                predicted_index=ordered.index(predicted),
                predicted_label=predicted,
                confidence=0.9,
                top_k=[],
            )
    return classifier


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def test_the_example_file_creates_the_study_it_describes(demo_like, capsys):
    call_command("create_study", "--from", str(EXAMPLE))
    study = Study.objects.get(slug="gulls-from-file")
    assert study.status == Study.Status.DRAFT
    assert [u.username for u in study.owners.all()] == ["researcher"]
    assert study.platform == "prolific" and study.time_limit_minutes == 30
    assert study.completion_code == "C1GULLS" and study.no_consent_code == "C1NOCONS"
    assert study.exclusion_rules == {
        "max_failed_attention_checks": 1,
        "min_median_response_ms": 800,
        "max_same_answer_share": 0.9,
    }
    assert "**explainstudy**" in study.consent_text and "wing-tip" in study.debrief_text
    assert study.comprehension_questions[0]["answer"] == 0

    main = list(study.items.filter(role=StudyItem.Role.MAIN).select_related("image"))
    assert len(main) == 8  # 2 per class x 4 classes
    classes = {item.image.class_label.display_name for item in main}
    assert classes == {"California Gull", "Herring Gull", "Ring-billed Gull", "Western Gull"}
    predictions = {p.image_id: p for p in Prediction.objects.all()}
    wrong = [i for i in main if not predictions[i.image_id].is_correct]
    assert len(wrong) == 1  # 0.125 of 8
    assert study.items.filter(role=StudyItem.Role.TRAINING).count() == 2
    assert study.items.filter(role=StudyItem.Role.ATTENTION).count() == 2
    chosen = list(study.items.values_list("image_id", flat=True))
    assert len(chosen) == len(set(chosen))

    conditions = {c.name: c for c in study.conditions.all()}
    assert set(conditions) == {"no-explanation", "gradcam", "igospp"}
    assert not conditions["gradcam"].show_ai_prediction and conditions["igospp"].quota == 40
    assert conditions["gradcam"].explanation_params_hash
    out = capsys.readouterr().out
    assert "before launch" in out
    # The only warning: all 8 species are offered while the items show 4.
    [warning] = [line for line in out.splitlines() if line.startswith("warning:")]
    assert "choose among all 8 species" in warning and "main items show 4" in warning


def test_conditions_that_differ_in_what_they_show_are_created_with_a_warning(
    demo_like, tmp_path, capsys
):
    text = EXAMPLE.read_text().replace(
        'method = "igospp"\nshow_ai_prediction = false',
        'method = "igospp"\nshow_ai_prediction = true',
        1,
    )
    call_command("create_study", "--from", str(write(tmp_path, text)))
    assert (
        "warning: conditions differ in whether they show the AI's answer (shown: "
        "igospp; not shown: no-explanation, gradcam)" in capsys.readouterr().out
    )
    assert Study.objects.filter(slug="gulls-from-file").exists()


def test_the_selection_is_seeded(demo_like, tmp_path):
    text = EXAMPLE.read_text()
    call_command("create_study", "--from", str(write(tmp_path, text)))
    again = text.replace('slug = "gulls-from-file"', 'slug = "again"')
    call_command("create_study", "--from", str(write(tmp_path, again)))
    first, second = (
        list(Study.objects.get(slug=slug).items.values_list("image_id", "role").order_by("pk"))
        for slug in ("gulls-from-file", "again")
    )
    assert first == second


ERRORS = [
    ('owners = ["researcher"]', 'owners = ["researcher"]\ncolour = "red"', "colour: unknown key"),
    ("per_class = 2", 'per_class = "two"', "items.per_class: expected an integer, got 'two'"),
    ("time_limit_minutes = 30", "time_limit_minutes = 30.5", "time_limit_minutes: expected an"),
    ('classifier = "demo-classifier"', 'classifier = "nope"', "classifier: no classifier named"),
    ('method = "igospp"', 'method = "igospq"', "conditions[2].method: unknown explanation method"),
    ("params = {}", "params = { nope = 1 }", "conditions[1].params:"),
    ("show_ai_prediction = false", 'show_ai_prediction = "yes"', "conditions[0].show_ai_predi"),
    ('slug = "gulls-from-file"', 'slug = "Walk Bad Slug!"', "slug: 'Walk Bad Slug!' is not a"),
    ('name = "igospp"', 'name = "igos pp"', "condition name 'igos pp' is not a slug"),
    ('"Western Gull"]', '"Western Goose"]', "items.classes[3]: no class 'Western Goose'"),
    ("per_class = 2", "per_class = 5", "items.per_class: class 'California Gull' has 4 test"),
    ("training = 2", "training = 30", "items.training, items.attention:"),
    ("ai_wrong_share = 0.125", "ai_wrong_share = 0.75", "items.ai_wrong_share: 0.75 of 8"),
    ('owners = ["researcher"]', 'owners = ["nobody"]', "owners[0]: no user named 'nobody'"),
    ("max_same_answer_share = 0.9", "too_fast = 1", "exclusion_rules: unknown exclusion rule"),
    ('platform = "prolific"', 'platform = "zoom"', "unknown platform 'zoom'"),
    ("answer = 0", "answer = 0\nhint = 1", "comprehension[0].hint: unknown key"),
    ('name = "gradcam"', 'name = "no-explanation"', "condition names must be distinct"),
    ("[texts]", "[texts]\nconsent = 1", "not valid TOML"),
]


@pytest.mark.parametrize("old, new, message", ERRORS, ids=[e[2][:30] for e in ERRORS])
def test_errors_name_the_key_and_save_nothing(demo_like, tmp_path, old, new, message):
    text = EXAMPLE.read_text()
    assert old in text
    predictions_before = Prediction.objects.count()
    with pytest.raises(CommandError) as error:
        call_command("create_study", "--from", str(write(tmp_path, text.replace(old, new, 1))))
    assert message in str(error.value)
    assert not Study.objects.exists() and not StudyItem.objects.exists()
    assert Prediction.objects.count() == predictions_before


def test_missing_predictions_are_computed_and_rolled_back_on_error(classifier, tmp_path):
    text = EXAMPLE.read_text().replace('owners = ["researcher"]', "owners = []")
    text = text.replace('"demo-classifier"', '"tiny-classifier"')
    text = text.replace("training = 2", "training = 0").replace("attention = 2", "attention = 0")
    text = text.replace("per_class = 2", "per_class = 1")
    text = text.replace('classes = ["California', '# classes = ["California')  # all 8
    # The tiny set has one test image per class, so exactly one share of AI-wrong items is
    # possible: the untrained classifier's. Every other share fails, and what was computed
    # for it is rolled back with the rest.
    created = []
    for wrong in range(9):
        share_text = text.replace("ai_wrong_share = 0.125", f"ai_wrong_share = {wrong / 8}")
        share_text = share_text.replace('"gulls-from-file"', f'"share-{wrong}"')
        try:
            call_command("create_study", "--from", str(write(tmp_path, share_text)))
        except CommandError as error:
            assert "items.ai_wrong_share" in str(error)
            # Predictions are kept only with the one study created.
            assert Prediction.objects.count() == (8 if created else 0)
        else:
            created.append(wrong)
    assert len(created) == 1
    study = Study.objects.get()
    predictions = Prediction.objects.filter(image__study_items__study=study)
    assert predictions.count() == study.items.count() == 8
    assert sum(not p.is_correct for p in predictions) == created[0]


def test_a_missing_file_is_a_clear_error(db, tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("create_study", "--from", str(tmp_path / "none.toml"))


@pytest.mark.slow  # igospp on every item: about 100 s on a busy 2-core machine
def test_the_example_creates_precomputes_and_launches_as_the_readme_says(demo_like):
    # As in the demo, the model errs on one test image of the example's four classes.
    for prediction in Prediction.objects.select_related("image__class_label"):
        label = prediction.image.class_label
        if label.display_name != "California Gull":
            prediction.predicted_label = label
            prediction.predicted_index = demo_like.class_order.index(label.source_name)
            prediction.save()
    call_command("create_study", "--from", str(EXAMPLE))
    call_command("precompute", "--study", "gulls-from-file")
    # Its items come from 4 of the 8 species offered, so "always California Gull" scores 2 of
    # 8 against a chance of 1 in 8: the audit refuses the launch until a reason is given.
    with pytest.raises(CommandError, match="shortcut audit"):
        call_command("study_lifecycle", "gulls-from-file", "launch_pilot", "--by", "researcher")
    reason = "a pilot of the page flow on four species; not analysed"
    call_command(
        "study_lifecycle",
        "gulls-from-file",
        "launch_pilot",
        "--by",
        "researcher",
        "--shortcut-override-reason",
        reason,
    )
    study = Study.objects.get(slug="gulls-from-file")
    assert study.status == Study.Status.PILOT and study.config_hash
    assert study.shortcut_override_reason == reason
    assert study.events.get().actor.username == "researcher"
