"""Launching a study: what stops it (`study_launch_problems`, and the shortcut audit,
`study_shortcut_audit`), the frozen design its hash covers (`study_design`, shipped as
design.json), and the launch itself."""

import hashlib
import json
from pathlib import PurePosixPath

from django.db import transaction

from explain_engine.methods.sag import shown_share
from explain_engine.models import Explanation, Prediction
from study.design.frozen import FrozenStudy, frozen_study
from study.design.question_types import QUESTION_TYPES, comparisons_freeze, sag_comparison
from study.design.shortcut_audit import AuditCondition, AuditItem, AuditReport, shortcut_audit
from study.design.spec import StudyConfigError
from study.design.stimuli import explanation_for
from study.models import Study, StudyItem

PROBLEM_EXAMPLES = 3


def _item_names(items: list[StudyItem]) -> str:
    """Items as the researcher knows them: the image's file name in its data set (the
    researcher's page may name the class; participants never see this), a few, then how
    many more."""
    names = [
        PurePosixPath(item.image.source_path).name or str(item.image)
        for item in items[:PROBLEM_EXAMPLES]
    ]
    more = len(items) - len(names)
    return ", ".join(names) + (f" and {more} more" if more else "")


def study_launch_problems(*, study: Study) -> list[str]:
    """What stops the study from launching: items without the model's prediction, conditions
    without a finished explanation of the prediction for every item. Empty = launchable."""
    problems = []
    items = list(study.items.select_related("image"))
    if not study.conditions.exists():
        problems.append("the study has no conditions")
    if not any(item.role == StudyItem.Role.MAIN for item in items):
        problems.append("the study has no main trial items")
    image_ids = {item.image_id for item in items}
    predicted = dict(
        Prediction.objects.filter(classifier=study.classifier, image_id__in=image_ids).values_list(
            "image_id", "predicted_index"
        )
    )
    unpredicted = [item for item in items if item.image_id not in predicted]
    if unpredicted:
        problems.append(
            f"{len(unpredicted)} item(s) have no prediction from {study.classifier.name!r}: "
            f"{_item_names(unpredicted)}; run `manage.py precompute "
            f"--study {study.slug}`"
        )
    for condition in study.conditions.exclude(explanation_method="").order_by("pk"):
        explained = set(
            Explanation.objects.filter(
                classifier=study.classifier,
                image_id__in=image_ids,
                method=condition.explanation_method,
                params_hash=condition.explanation_params_hash,
                status=Explanation.Status.DONE,
            ).values_list("image_id", "target_index")
        )
        missing = [
            item for item in items if (item.image_id, predicted.get(item.image_id)) not in explained
        ]
        if missing:
            problems.append(
                f"condition {condition.name!r}: {len(missing)} of {len(items)} item(s) have "
                f"no finished {condition.explanation_method} explanation: "
                f"{_item_names(missing)}; run `manage.py precompute --study {study.slug}`"
            )
    if QUESTION_TYPES[study.question_type].needs_comparison:
        without_pair = [
            item
            for item in items
            if sag_comparison(classifier=study.classifier, image=item.image) is None
        ]
        if without_pair:
            problems.append(
                f"{len(without_pair)} item(s) have no SAG comparison pair for the comparative "
                f"question: {_item_names(without_pair)}; run `manage.py "
                f"precompute --study {study.slug}`, or replace items whose search found no "
                "pair with a clear confidence gap"
            )
    return problems


def study_shortcut_audit(*, study: Study) -> AuditReport:
    """The shortcut audit of the study's main items as they stand (study.design.shortcut_audit).

    Items whose correct answer a draft cannot decide yet (no prediction, no pair) are left
    out; the launch problems name them."""
    frozen = frozen_study(study)
    question_type = QUESTION_TYPES[study.question_type]
    items = [
        _audit_item(frozen, item)
        for item in sorted(frozen.items.values(), key=lambda item: item.pk)
        if item.role == StudyItem.Role.MAIN and frozen.correct_answers.get(item.pk) is not None
    ]
    conditions = [
        AuditCondition(
            name=condition.name,
            shows_ai_answer=condition.show_ai_prediction or question_type.shows_ai_prediction,
            has_figure=bool(condition.explanation_method),
        )
        for condition in sorted(frozen.conditions.values(), key=lambda c: c.pk)
    ]
    return shortcut_audit(
        choices=[choice.value for choice in frozen.choices],
        choice_names=[choice.text for choice in frozen.choices],
        items=items,
        conditions=conditions,
        comparative=question_type.needs_comparison,
        margin_points=study.shortcut_margin_points,
    )


def _audit_item(frozen: FrozenStudy, item: StudyItem) -> AuditItem:
    """What the audit's strategies see of one main item: its right answer, the AI's answer
    (when it is one of the choices), and for a comparative item the pair's sizes and the SAG
    conditions whose graph draws both pictures of the pair (with their confidences)."""
    prediction = frozen.predictions.get(item.image_id)
    ai_answer = str(prediction.predicted_label_id) if prediction else None
    pair_sizes, readable_in = None, set()
    comparison = frozen.comparisons.get(item.image_id)
    if comparison is not None:
        pair = comparison.explanation.data["pairs"][comparison.pair_index]
        pair_sets = {frozenset(pair["a_patches"]), frozenset(pair["b_patches"])}
        # what a participant sees: the share of the photo each shows, as the pair's kind
        grid = comparison.explanation.params["grid"]
        pair_sizes = (shown_share(pair["a_patches"], grid), shown_share(pair["b_patches"], grid))
        for condition in frozen.conditions.values():
            shown = frozen.explanations.get((condition.pk, item.image_id))
            if condition.explanation_method != "sag" or shown is None:
                continue
            drawn = {frozenset(node["patches"]) for node in shown.data.get("nodes", [])}
            if pair_sets <= drawn:
                readable_in.add(condition.name)
    return AuditItem(
        correct=frozen.correct_answers[item.pk],
        ai_answer=ai_answer if ai_answer in {c.value for c in frozen.choices} else None,
        pair_sizes=pair_sizes,
        readable_in=frozenset(readable_in),
    )


def study_design(*, study: Study) -> dict:
    """Everything that defines what participants see and how they are judged: the frozen
    design. Its hash is the study's config hash; the export ships it as design.json.
    Quotas are not in it: they decide how many enter, not what anyone sees, and may change
    while the study runs (study.researcher.lifecycle.study_quota_set, logged)."""
    classifier = study.classifier
    conditions = list(study.conditions.order_by("name"))
    items = _design_items(study, conditions)
    return {
        "slug": study.slug,
        "title": study.title,
        "platform": study.platform,
        "question_type": study.question_type,
        "classifier": {
            "name": classifier.name,
            "architecture": classifier.architecture,
            "checkpoint_sha256": classifier.checkpoint_sha256,
            "class_order": classifier.class_order,
        },
        "time_limit_minutes": study.time_limit_minutes,
        "conditions": [
            {
                "name": c.name,
                "explanation_method": c.explanation_method,
                "explanation_params": c.explanation_params,
                "explanation_params_hash": c.explanation_params_hash,
                "show_ai_prediction": c.show_ai_prediction,
                "show_ai_confidence": c.show_ai_confidence,
            }
            for c in conditions
        ],
        "items": items,
        "texts": {
            "description": study.description,
            "consent": study.consent_text,
            "consent_version": study.consent_version,
            "instructions": study.instructions_text,
            "debrief": study.debrief_text,
        },
        "comprehension_questions": study.comprehension_questions,
        "comprehension_max_attempts": study.comprehension_max_attempts,
        "completion_codes": {
            "completed": study.completion_code,
            "no_consent": study.no_consent_code,
            "failed_comprehension": study.failed_comprehension_code,
        },
        "exclusion_rules": study.exclusion_rules,
        "shortcut_audit": {
            "margin_points": study.shortcut_margin_points,
            "override_reason": study.shortcut_override_reason,
        },
    }


def _design_items(study: Study, conditions: list) -> list[dict]:
    """The design's items: each image, its role, the model's prediction and what each
    explanation condition shows for it."""
    predictions = {
        prediction.image_id: prediction
        for prediction in Prediction.objects.filter(
            classifier=study.classifier, image__study_items__study=study
        ).select_related("predicted_label")
    }
    items = []
    items_with_images = study.items.select_related("image__class_label", "comparison_explanation")
    for item in items_with_images.order_by("pk"):
        prediction = predictions.get(item.image_id)
        explanations = {}
        for condition in conditions:
            if condition.explanation_method:
                explanation = explanation_for(condition=condition, image=item.image)
                explanations[condition.name] = str(explanation.public_id) if explanation else None
        items.append(
            {
                "item": item.pk,
                "role": item.role,
                "image": str(item.image.public_id),
                "image_sha256": item.image.sha256,
                "true_label": item.image.class_label.display_name,
                "ai_prediction": prediction.predicted_label.display_name if prediction else None,
                "ai_confidence": round(prediction.confidence, 6) if prediction else None,
                "explanations": explanations,
                **_design_comparison(item),
            }
        )
    return items


def _design_comparison(item: StudyItem) -> dict:
    """A comparative item's pair as stored at launch: the SAG search, the pair, its answer."""
    if item.comparison_pair is None:
        return {}
    pair = item.comparison_explanation.data["pairs"][item.comparison_pair]
    return {
        "comparison": {
            "sag_search": str(item.comparison_explanation.public_id),
            "pair": item.comparison_pair,
            "answer": pair["answer"],
        }
    }


def study_config_hash(*, study: Study) -> str:
    design = json.dumps(study_design(study=study), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(design.encode()).hexdigest()


def study_launch(
    *, study: Study, status: str = Study.Status.LIVE, shortcut_override_reason: str = ""
) -> Study:
    """Open a study to participants once its item bank is complete and no strategy that
    needs no understanding beats chance by more than the study's margin (the shortcut
    audit); freeze its design.

    A draft goes to pilot or live, a pilot or a paused study to live. A failed audit is
    overridden only with a reason, which the design keeps. The config hash covers
    everything participants see, the exclusion rules and the audit's margin and override,
    and is stamped on every participant.
    """
    if status not in (Study.Status.PILOT, Study.Status.LIVE):
        raise StudyConfigError(f"a study is launched as pilot or live, not {status!r}")
    allowed_from = {
        Study.Status.PILOT: {Study.Status.DRAFT},
        Study.Status.LIVE: {Study.Status.DRAFT, Study.Status.PILOT, Study.Status.PAUSED},
    }[status]
    if study.status not in allowed_from:
        raise StudyConfigError(f"a {study.status} study cannot be launched as {status}")
    problems = study_launch_problems(study=study)
    if problems:
        raise StudyConfigError("cannot launch: " + "; ".join(problems))
    override = shortcut_override_reason.strip() or study.shortcut_override_reason
    # A refused launch keeps nothing, the comparisons drawn for it included.
    with transaction.atomic():
        if QUESTION_TYPES[study.question_type].needs_comparison:
            comparisons_freeze(
                classifier=study.classifier, items=list(study.items.select_related("image"))
            )
        audit = study_shortcut_audit(study=study)
        if audit.failures and not override:
            raise StudyConfigError(
                f"cannot launch: the shortcut audit finds answers that need no understanding "
                f"beating chance by more than {audit.margin_points:g} points: "
                + "; ".join(row.line() for row in audit.failures)
                + ". Change the items, or override with a reason (kept in the design)"
            )
        study.shortcut_override_reason = override
        study.config_hash = study_config_hash(study=study)
        study.status = status
        study.save(update_fields=["shortcut_override_reason", "config_hash", "status"])
    return study
