"""A study's definition as one value: `StudySpec`, checked once when it is made. A TOML file
(`study_files`) and code (tests, the demo) both produce one; `creation.study_create` takes it.
"""

import re
from dataclasses import dataclass, field

from explain_engine.models import Classifier, Image
from study.design.question_types import QUESTION_TYPES
from study.design.shortcut_audit import DEFAULT_MARGIN_POINTS
from study.models import Study

SLUG = re.compile(r"[-a-zA-Z0-9_]{1,60}")


class StudyConfigError(ValueError):
    """A study definition that cannot run as asked."""


@dataclass(frozen=True)
class ConditionSpec:
    name: str
    explanation_method: str = ""
    explanation_params: dict | None = None
    show_ai_prediction: bool = False
    show_ai_confidence: bool = False
    quota: int | None = None  # None: the study's participants_per_condition


# Exclusion rules a study may declare before launch: name -> (type, what it excludes).
EXCLUSION_RULES = {
    "max_failed_attention_checks": (
        int,
        "exclude a participant who failed more than this many attention checks",
    ),
    "min_median_response_ms": (
        int,
        "exclude a participant whose median response time on main trials is below this "
        "(the server's time, refined by the browser's where consistent with it)",
    ),
    "max_same_answer_share": (
        float,
        "exclude a participant who gave one answer on more than this share of main trials "
        "(straight-lining), 0..1",
    ),
}


# A count or a number of milliseconds; beyond this a rule would be a typo.
MAX_EXCLUSION_RULE_VALUE = 10**9
# Far above any crowd study, far below any column's limit.
MAX_PARTICIPANTS_PER_CONDITION = 100_000
MAX_TIME_LIMIT_MINUTES = 7 * 24 * 60
MAX_COMPREHENSION_ATTEMPTS = 20


def exclusion_rules_check(rules: dict) -> dict:
    """The rules if every one is known and of its type; else StudyConfigError naming it."""
    if not isinstance(rules, dict):
        raise StudyConfigError("exclusion rules must be a table of rule = value")
    for name, value in rules.items():
        if name not in EXCLUSION_RULES:
            raise StudyConfigError(
                f"unknown exclusion rule {name!r}; known: {sorted(EXCLUSION_RULES)}"
            )
        kind = EXCLUSION_RULES[name][0]
        accepted = int | float if kind is float else int
        if isinstance(value, bool) or not isinstance(value, accepted):
            kind_name = "a number" if kind is float else "an integer"
            raise StudyConfigError(f"exclusion rule {name!r} must be {kind_name}")
        limit = 1 if name == "max_same_answer_share" else MAX_EXCLUSION_RULE_VALUE
        if not 0 <= value <= limit:  # NaN too
            raise StudyConfigError(f"exclusion rule {name!r} is out of range: {value}")
    return dict(rules)


@dataclass(frozen=True)
class StudySpec:
    """Everything `study_create` needs; a StudySpec that exists has passed its checks
    (StudyConfigError names the first problem)."""

    slug: str
    title: str
    classifier: Classifier
    platform: str
    conditions: list[ConditionSpec]
    main_images: list[Image]
    participants_per_condition: int
    consent_text: str
    instructions_text: str
    question_type: str = "species_identification"
    completion_code: str | None = None  # None: a random one
    training_images: list[Image] = ()
    attention_images: list[Image] = ()
    comprehension_questions: list[dict] = ()
    comprehension_max_attempts: int = 2
    owners: list = ()
    description: str = ""
    debrief_text: str = ""
    consent_version: str = "1"
    time_limit_minutes: int = 60
    no_consent_code: str = ""
    failed_comprehension_code: str = ""
    exclusion_rules: dict = field(default_factory=dict)
    shortcut_margin_points: int = DEFAULT_MARGIN_POINTS  # see study.design.shortcut_audit

    def __post_init__(self):
        self._check_shape()
        # Frozen: the checked copy of the rules replaces the given one.
        object.__setattr__(
            self, "exclusion_rules", exclusion_rules_check(self.exclusion_rules or {})
        )
        self._check_questions_and_images()

    def _check_shape(self) -> None:
        # The slug is in every URL of the study: anything else breaks every page listing it.
        if not isinstance(self.slug, str) or not SLUG.fullmatch(self.slug) or self.slug == "new":
            raise StudyConfigError(
                f"slug: {self.slug!r} is not a slug (1 to 60 letters, digits, - or _; not 'new')"
            )
        if self.question_type not in QUESTION_TYPES:
            raise StudyConfigError(
                f"unknown question type {self.question_type!r}; known: {sorted(QUESTION_TYPES)}"
            )
        if self.platform not in Study.Platform.values:
            raise StudyConfigError(
                f"unknown platform {self.platform!r}; known: {Study.Platform.values}"
            )
        if not self.conditions:
            raise StudyConfigError("a study needs at least one condition")
        if len({spec.name for spec in self.conditions}) != len(self.conditions):
            raise StudyConfigError("condition names must be distinct")
        if not self.main_images:
            raise StudyConfigError("a study needs at least one main trial image")
        most = MAX_PARTICIPANTS_PER_CONDITION
        if not 1 <= self.participants_per_condition <= most:
            raise StudyConfigError(f"participants_per_condition must lie in 1..{most}")
        for spec in self.conditions:
            if spec.quota is not None and not 1 <= spec.quota <= most:
                raise StudyConfigError(f"condition {spec.name!r}: quota must lie in 1..{most}")
            if not isinstance(spec.name, str) or not SLUG.fullmatch(spec.name):
                raise StudyConfigError(f"condition name {spec.name!r} is not a slug")
        if not 1 <= self.time_limit_minutes <= MAX_TIME_LIMIT_MINUTES:
            raise StudyConfigError(f"time_limit_minutes must lie in 1..{MAX_TIME_LIMIT_MINUTES}")
        if not 1 <= self.comprehension_max_attempts <= MAX_COMPREHENSION_ATTEMPTS:
            raise StudyConfigError(
                f"comprehension_max_attempts must lie in 1..{MAX_COMPREHENSION_ATTEMPTS}"
            )
        margin = self.shortcut_margin_points
        if isinstance(margin, bool) or not isinstance(margin, int) or not 0 <= margin <= 100:
            raise StudyConfigError(
                "shortcut_margin_points must be a whole number of points, 0..100"
            )

    def _check_questions_and_images(self) -> None:
        for question in self.comprehension_questions:
            choices = question.get("choices") or []
            if (
                not question.get("question")
                or len(choices) < 2
                or question.get("answer") not in range(len(choices))
            ):
                raise StudyConfigError(
                    f"comprehension question {question!r} needs a question, two or more "
                    "choices and the index of the right one"
                )
        main_ids = {image.pk for image in self.main_images}
        if {image.pk for image in self.training_images} & main_ids:
            raise StudyConfigError(
                "an image cannot be both a practice and a main trial: practice feedback "
                "would reveal the main trial's answer"
            )
        foreign = [
            image
            for image in [*self.main_images, *self.training_images, *self.attention_images]
            if image.image_set_id != self.classifier.image_set_id
        ]
        if foreign:
            raise StudyConfigError(
                f"{len(foreign)} image(s) are not from the classifier's image set "
                f"{self.classifier.image_set.name!r}"
            )


def condition_warnings(conditions) -> list[str]:
    """What is allowed but probably not meant: conditions (ConditionSpecs or Conditions) that
    differ in more than their explanation, so that a difference in accuracy could come from
    what else they show."""
    conditions = list(conditions)
    warnings = []
    for attribute, what in (
        ("show_ai_prediction", "the AI's answer"),
        ("show_ai_confidence", "the AI's confidence"),
    ):
        shown = [c.name for c in conditions if getattr(c, attribute)]
        hidden = [c.name for c in conditions if not getattr(c, attribute)]
        if shown and hidden:
            warnings.append(
                f"conditions differ in whether they show {what} (shown: {', '.join(shown)}; "
                f"not shown: {', '.join(hidden)}): a difference in accuracy between them may "
                f"come from {what}, not from the explanation"
            )
    return warnings
