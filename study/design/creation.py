"""Creating a study from its checked spec, and the precompute job for what it shows."""

import secrets

from django.core.exceptions import ValidationError
from django.db import transaction

from explain_engine.models import PrecomputeJob
from explain_engine.services.explanations import method_for
from explain_engine.services.precompute import precompute_job_create
from study.design.question_types import QUESTION_TYPES, study_species_offered
from study.design.spec import ConditionSpec, StudyConfigError, StudySpec, condition_warnings
from study.models import Condition, Study, StudyItem


def study_warnings(*, study: Study) -> list[str]:
    """What a new or edited study allows but probably does not mean: conditions differing in
    more than their explanation, answers offered that no item has."""
    warnings = condition_warnings(study.conditions.order_by("pk"))
    species = study_species_offered(study=study)
    if species is not None and species.warning():
        warnings.append(species.warning())
    return warnings


def study_create(spec: StudySpec) -> Study:
    """Create the draft study `spec` describes, its conditions (each method's parameters
    resolved against the classifier) and its items, in one transaction."""
    with transaction.atomic():
        study = Study(
            slug=spec.slug,
            title=spec.title,
            platform=spec.platform,
            question_type=spec.question_type,
            classifier=spec.classifier,
            participants_per_condition=spec.participants_per_condition,
            consent_text=spec.consent_text,
            instructions_text=spec.instructions_text,
            completion_code=spec.completion_code or secrets.token_hex(4).upper(),
            comprehension_questions=list(spec.comprehension_questions),
            comprehension_max_attempts=spec.comprehension_max_attempts,
            description=spec.description,
            debrief_text=spec.debrief_text,
            consent_version=spec.consent_version,
            time_limit_minutes=spec.time_limit_minutes,
            no_consent_code=spec.no_consent_code,
            failed_comprehension_code=spec.failed_comprehension_code,
            exclusion_rules=spec.exclusion_rules,
            shortcut_margin_points=spec.shortcut_margin_points,
        )
        _fields_checked(study, "study")
        study.save()
        study.owners.set(spec.owners)
        for condition in spec.conditions:
            _condition_create(study, condition)
        roles = (
            (StudyItem.Role.TRAINING, spec.training_images),
            (StudyItem.Role.MAIN, spec.main_images),
            (StudyItem.Role.ATTENTION, spec.attention_images),
        )
        StudyItem.objects.bulk_create(
            [
                StudyItem(study=study, image=image, role=role)
                for role, images in roles
                for image in images
            ]
        )
    return study


def _condition_create(study: Study, spec: ConditionSpec) -> Condition:
    method_params, method_params_hash = {}, ""
    if spec.explanation_method:
        try:
            method = method_for(
                classifier=study.classifier,
                slug=spec.explanation_method,
                params=spec.explanation_params or {},
            )
        except ValueError as error:
            raise StudyConfigError(f"condition {spec.name!r}: {error}") from error
        method_params, method_params_hash = method.params(), method.params_hash()
    condition = Condition(
        study=study,
        name=spec.name,
        explanation_method=spec.explanation_method,
        explanation_params=method_params,
        explanation_params_hash=method_params_hash,
        show_ai_prediction=spec.show_ai_prediction,
        show_ai_confidence=spec.show_ai_confidence,
        quota=spec.quota,
    )
    _fields_checked(condition, f"condition {spec.name!r}")
    condition.save()
    return condition


def _fields_checked(record, what: str) -> None:
    """Refuse what its columns would not hold or what a URL could not name (a slug with
    spaces, a text past its length), before it is saved, as a StudyConfigError."""
    try:
        record.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as error:
        problems = "; ".join(
            f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items()
        )
        raise StudyConfigError(f"{what}: {problems}") from None


def study_precompute_job(*, study: Study, batch_size: int | None = None) -> PrecomputeJob:
    """A precompute job for everything the study shows: every item's prediction, each
    explanation condition's explanations with the condition's own parameters, and for a
    comparative question the SAG search (default parameters) its image pairs come from."""
    methods = [
        (condition.explanation_method, condition.explanation_params)
        for condition in study.conditions.exclude(explanation_method="")
    ]
    if QUESTION_TYPES[study.question_type].needs_comparison:
        methods.append(("sag", {}))
    images = [item.image for item in study.items.select_related("image")]
    job = precompute_job_create(
        classifier=study.classifier, methods=methods, images=images, batch_size=batch_size
    )
    study.precompute_jobs.add(job)
    return job
