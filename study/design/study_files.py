"""A study defined in a TOML file, so a design can be versioned and reviewed.

`study_create_from_toml` reads the file, checks every key (unknown keys, wrong types,
unknown classifier, classes, methods, owners, too few images to choose from), selects the
items, and creates the study in one transaction: on any error nothing is saved. Errors are
`StudyFileError`s whose message starts with the key at fault, e.g.
`items.per_class: expected an integer, got 'two'`. `examples/study.toml` documents the schema.
"""

import random
import tomllib
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction

from explain_engine.methods import get_method
from explain_engine.models import Classifier, ClassLabel, Image, Prediction
from explain_engine.services.predictions import predictions_compute
from study.design.creation import study_create
from study.design.shortcut_audit import DEFAULT_MARGIN_POINTS
from study.design.spec import ConditionSpec, StudyConfigError, StudySpec, exclusion_rules_check
from study.models import Study


class StudyFileError(ValueError):
    """A study file that cannot become a study; the message names the key."""


REQUIRED = object()

# key -> (type, default); a dict type means a sub-table, checked on its own.
TOP_KEYS = {
    "slug": (str, REQUIRED),
    "title": (str, REQUIRED),
    "description": (str, ""),
    "classifier": (str, REQUIRED),
    "question_type": (str, "species_identification"),
    "platform": (str, REQUIRED),
    "participants_per_condition": (int, REQUIRED),
    "time_limit_minutes": (int, 60),
    "shortcut_margin_points": (int, DEFAULT_MARGIN_POINTS),
    "owners": (list, []),
    "comprehension_max_attempts": (int, 2),
    "items": (dict, REQUIRED),
    "texts": (dict, REQUIRED),
    "completion_codes": (dict, {}),
    "exclusion_rules": (dict, {}),
    "comprehension": (list, []),
    "conditions": (list, REQUIRED),
}
ITEM_KEYS = {
    "classes": (list, None),
    "per_class": (int, REQUIRED),
    "ai_wrong_share": (float, None),
    "training": (int, 0),
    "attention": (int, 0),
    "seed": (int, 0),
}
TEXT_KEYS = {
    "consent": (str, REQUIRED),
    "consent_version": (str, "1"),
    "instructions": (str, REQUIRED),
    "debrief": (str, ""),
}
CODE_KEYS = {
    "completed": (str, ""),
    "no_consent": (str, ""),
    "failed_comprehension": (str, ""),
}
CONDITION_KEYS = {
    "name": (str, REQUIRED),
    "method": (str, ""),
    "params": (dict, {}),
    "show_ai_prediction": (bool, False),
    "show_ai_confidence": (bool, False),
    "quota": (int, None),
}
COMPREHENSION_KEYS = {
    "question": (str, REQUIRED),
    "choices": (list, REQUIRED),
    "answer": (int, REQUIRED),
}
TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


def _checked(table, keys: dict, where: str) -> dict:
    """The table's values by key, defaults filled in; StudyFileError naming the first key
    that is unknown, missing or of the wrong type."""
    if not isinstance(table, dict):
        raise StudyFileError(f"{where or 'the file'}: expected a table")
    prefix = f"{where}." if where else ""
    for key in table:
        if key not in keys:
            raise StudyFileError(f"{prefix}{key}: unknown key; known: {', '.join(keys)}")
    values = {}
    for key, (kind, default) in keys.items():
        if key not in table:
            if default is REQUIRED:
                raise StudyFileError(f"{prefix}{key}: missing (required)")
            values[key] = default
            continue
        value = table[key]
        accepted = int | float if kind is float else kind
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, accepted):
            raise StudyFileError(f"{prefix}{key}: expected {TYPE_NAMES[kind]}, got {value!r}")
        values[key] = value
    return values


@dataclass(frozen=True)
class ItemSelection:
    main: list[Image]
    training: list[Image]
    attention: list[Image]


def study_items_select(
    *,
    classifier: Classifier,
    labels: list[ClassLabel],
    per_class: int,
    ai_wrong_share: float | None,
    n_training: int,
    n_attention: int,
    seed: int,
) -> ItemSelection:
    """Choose the items from the test split, seeded: `per_class` main items of each class,
    of which a share `ai_wrong_share` (of all main items) the classifier gets wrong; then
    practice and attention-check items from the test images left. Predictions missing for
    those images are computed first."""
    rng = random.Random(seed)
    images_by_label = {
        label.pk: list(label.images.filter(split=Image.Split.TEST).order_by("source_id"))
        for label in labels
    }
    for label in labels:
        available = len(images_by_label[label.pk])
        if available < per_class:
            raise StudyFileError(
                f"items.per_class: class {label.display_name!r} has {available} test "
                f"image(s), fewer than {per_class}"
            )
        rng.shuffle(images_by_label[label.pk])
    main: list[Image] = []
    if ai_wrong_share is None:
        for label in labels:
            main += images_by_label[label.pk][:per_class]
    else:
        main = _main_with_ai_wrong_share(
            classifier, labels, images_by_label, per_class, ai_wrong_share, rng
        )
    chosen = {image.pk for image in main}
    rest = [
        image for label in labels for image in images_by_label[label.pk] if image.pk not in chosen
    ]
    rng.shuffle(rest)
    if n_training + n_attention > len(rest):
        raise StudyFileError(
            f"items.training, items.attention: {n_training} + {n_attention} items asked for, "
            f"but only {len(rest)} test image(s) of the chosen classes are left after the "
            "main items"
        )
    return ItemSelection(
        main=main,
        training=rest[:n_training],
        attention=rest[n_training : n_training + n_attention],
    )


def _main_with_ai_wrong_share(
    classifier, labels, images_by_label, per_class, ai_wrong_share, rng
) -> list[Image]:
    if not 0 <= ai_wrong_share <= 1:
        raise StudyFileError(f"items.ai_wrong_share: must lie in [0, 1], got {ai_wrong_share}")
    pool = [image for images in images_by_label.values() for image in images]
    failures = predictions_compute(classifier=classifier, images=pool)
    if failures:
        raise StudyFileError(
            f"items: {len(failures)} test image(s) could not be read to predict them, e.g. "
            f"{next(iter(failures.values()))}"
        )
    predicted = dict(
        Prediction.objects.filter(classifier=classifier, image__in=pool).values_list(
            "image_id", "predicted_label_id"
        )
    )
    wrong = {
        label.pk: [i for i in images_by_label[label.pk] if predicted[i.pk] != label.pk]
        for label in labels
    }
    right = {
        label.pk: [i for i in images_by_label[label.pk] if predicted[i.pk] == label.pk]
        for label in labels
    }
    n_main = per_class * len(labels)
    wanted = round(ai_wrong_share * n_main)
    # Spread the AI-wrong items over the classes, one at a time, in a seeded class order.
    order = list(labels)
    rng.shuffle(order)
    taken = {label.pk: 0 for label in labels}
    remaining = wanted
    while remaining:
        progressed = False
        for label in order:
            limit = min(per_class, len(wrong[label.pk]))
            if remaining and taken[label.pk] < limit:
                taken[label.pk] += 1
                remaining -= 1
                progressed = True
        if not progressed:
            raise StudyFileError(
                f"items.ai_wrong_share: {ai_wrong_share} of {n_main} main items is {wanted} "
                f"the AI gets wrong, but only {wanted - remaining} such test image(s) can be "
                f"chosen (at most {per_class} per class)"
            )
    main = []
    for label in labels:
        n_right = per_class - taken[label.pk]
        if len(right[label.pk]) < n_right:
            raise StudyFileError(
                f"items.ai_wrong_share: class {label.display_name!r} has "
                f"{len(right[label.pk])} test image(s) the AI gets right, {n_right} needed"
            )
        main += wrong[label.pk][: taken[label.pk]] + right[label.pk][:n_right]
    return main


def study_create_from_toml(*, path: Path) -> Study:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise StudyFileError(f"cannot read {path}: {error.strerror or error}") from error
    except UnicodeDecodeError as error:
        raise StudyFileError(f"{path} is not UTF-8 text: {error}") from error
    return study_create_from_text(text=text, where=str(path))


def _holds_nul(value) -> bool:
    """Whether any key or string in the parsed file holds a NUL character."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(key) or _holds_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False


def study_create_from_text(*, text: str, where: str = "the file", owner=None) -> Study:
    """The draft study a TOML document describes, keeping the document (to edit and export
    it later); `owner` joins the owners the file names."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise StudyFileError(f"{where} is not valid TOML: {error}") from error
    except RecursionError:
        raise StudyFileError(f"{where}: arrays or tables nested too deeply") from None
    if "\x00" in text or _holds_nul(data):
        # PostgreSQL stores no NUL character in text; a study file has no use for one.
        raise StudyFileError(f"{where} contains a NUL character (\\u0000)")
    with transaction.atomic():
        try:
            study = study_create(study_spec_from_data(data))
        except StudyConfigError as error:
            raise StudyFileError(str(error)) from error
        study.source_toml = text
        study.save(update_fields=["source_toml"])
        if owner is not None:
            study.owners.add(owner)
    return study


def study_spec_from_data(data: dict) -> StudySpec:
    """The spec a parsed TOML file describes, every key checked; its items are selected
    here (predictions are computed where the selection needs them)."""
    top = _checked(data, TOP_KEYS, "")
    items = _checked(top["items"], ITEM_KEYS, "items")
    texts = _checked(top["texts"], TEXT_KEYS, "texts")
    codes = _checked(top["completion_codes"], CODE_KEYS, "completion_codes")
    if Study.objects.filter(slug=top["slug"]).exists():
        raise StudyFileError(f"slug: a study {top['slug']!r} already exists")
    classifier = _classifier(top["classifier"])
    owners = _owners(top["owners"])
    labels = _labels(classifier, items["classes"])
    conditions = [
        _condition_spec(table, f"conditions[{index}]")
        for index, table in enumerate(top["conditions"])
    ]
    comprehension = [
        _checked(table, COMPREHENSION_KEYS, f"comprehension[{index}]")
        for index, table in enumerate(top["comprehension"])
    ]
    try:
        rules = exclusion_rules_check(top["exclusion_rules"])
    except StudyConfigError as error:
        raise StudyFileError(f"exclusion_rules: {error}") from error
    _check_item_counts(items)
    selection = study_items_select(
        classifier=classifier,
        labels=labels,
        per_class=items["per_class"],
        ai_wrong_share=items["ai_wrong_share"],
        n_training=items["training"],
        n_attention=items["attention"],
        seed=items["seed"],
    )
    return StudySpec(
        slug=top["slug"],
        title=top["title"],
        description=top["description"],
        classifier=classifier,
        platform=top["platform"],
        question_type=top["question_type"],
        conditions=conditions,
        main_images=selection.main,
        training_images=selection.training,
        attention_images=selection.attention,
        participants_per_condition=top["participants_per_condition"],
        time_limit_minutes=top["time_limit_minutes"],
        shortcut_margin_points=top["shortcut_margin_points"],
        consent_text=texts["consent"],
        consent_version=texts["consent_version"],
        instructions_text=texts["instructions"],
        debrief_text=texts["debrief"],
        completion_code=codes["completed"] or None,
        no_consent_code=codes["no_consent"],
        failed_comprehension_code=codes["failed_comprehension"],
        comprehension_questions=comprehension,
        comprehension_max_attempts=top["comprehension_max_attempts"],
        exclusion_rules=rules,
        owners=owners,
    )


def _check_item_counts(items: dict) -> None:
    for key, least in (("per_class", 1), ("training", 0), ("attention", 0)):
        if items[key] < least:
            raise StudyFileError(f"items.{key}: must be at least {least}")


def _classifier(name: str) -> Classifier:
    try:
        return Classifier.objects.get(name=name)
    except Classifier.DoesNotExist:
        known = ", ".join(Classifier.objects.order_by("name").values_list("name", flat=True))
        raise StudyFileError(
            f"classifier: no classifier named {name!r}; known: {known or 'none'}"
        ) from None


def _owners(usernames: list) -> list:
    users = get_user_model().objects
    owners = []
    for index, username in enumerate(usernames):
        owner = users.filter(username=username).first() if isinstance(username, str) else None
        if owner is None:
            raise StudyFileError(f"owners[{index}]: no user named {username!r}")
        owners.append(owner)
    return owners


def _labels(classifier: Classifier, names: list | None) -> list[ClassLabel]:
    by_source = {label.source_name: label for label in classifier.image_set.classes.all()}
    if names is None:
        return [by_source[source_name] for source_name in classifier.class_order]
    by_display = {label.display_name: label for label in by_source.values()}
    labels = []
    for index, name in enumerate(names):
        if not isinstance(name, str):
            raise StudyFileError(f"items.classes[{index}]: expected a string, got {name!r}")
        label = by_source.get(name) or by_display.get(name)
        if label is None:
            known = ", ".join(sorted(by_display))
            raise StudyFileError(f"items.classes[{index}]: no class {name!r}; known: {known}")
        labels.append(label)
    if not labels:
        raise StudyFileError("items.classes: empty; leave it out to use every class")
    return labels


def _condition_spec(table, where: str) -> ConditionSpec:
    values = _checked(table, CONDITION_KEYS, where)
    if values["method"]:
        try:
            get_method(values["method"], **values["params"])
        except (ValueError, TypeError) as error:
            key = "params" if values["params"] else "method"
            raise StudyFileError(f"{where}.{key}: {error}") from error
    elif values["params"]:
        raise StudyFileError(f"{where}.params: parameters given, but no method")
    return ConditionSpec(
        name=values["name"],
        explanation_method=values["method"],
        explanation_params=values["params"],
        show_ai_prediction=values["show_ai_prediction"],
        show_ai_confidence=values["show_ai_confidence"],
        quota=values["quota"],
    )
