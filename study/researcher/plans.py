"""A study's power plan: its design read from the database, simulated by study.planning."""

from study.design.frozen import study_choices
from study.models import Study, StudyItem
from study.results.exclusions import exclusion_reasons
from study.results.planning import (
    DEFAULT_SIMS,
    MAX_N,
    PlanAssumptions,
    PlanDesign,
    StudyPlan,
    accuracies_for_difference,
    plan_study,
)


def study_plan_design(*, study: Study) -> PlanDesign:
    """What the simulation needs of the study: conditions in the study's order (the first
    is the analysis's reference), items per participant, answer choices, exclusion rules."""
    roles = list(study.items.values_list("role", flat=True))
    return PlanDesign(
        conditions=tuple(study.conditions.order_by("pk").values_list("name", flat=True)),
        main_items=roles.count(StudyItem.Role.MAIN),
        attention_items=roles.count(StudyItem.Role.ATTENTION),
        n_choices=len(study_choices(study)),
        question_type=study.question_type,
        exclusion_rules=dict(study.exclusion_rules or {}),
        planned_n=study.participants_per_condition,
    )


def study_plan(
    *,
    study: Study,
    accuracies: dict[str, float] | None = None,
    baseline: float | None = None,
    difference: float | None = None,
    ability_sd: float = 1.0,
    item_sd: float = 0.5,
    inattentive_share: float = 0.05,
    n_values: tuple[int, ...] = (),
    sims: int = DEFAULT_SIMS,
    alpha: float = 0.05,
    max_n: int = MAX_N,
    seed: int = 0,
    confirm: bool = False,
) -> StudyPlan:
    """The study's power plan for planted `accuracies` per condition, or for the first
    condition at `baseline` and every other `difference` higher (study.planning.PlanError
    naming the input at fault otherwise)."""
    design = study_plan_design(study=study)
    if accuracies is None:
        accuracies = accuracies_for_difference(
            design.conditions, baseline=baseline, difference=difference
        )
    assumptions = PlanAssumptions(
        accuracies=accuracies,
        ability_sd=ability_sd,
        item_sd=item_sd,
        inattentive_share=inattentive_share,
    )
    return plan_study(
        design,
        assumptions,
        exclusion_reasons=exclusion_reasons,
        n_values=n_values,
        sims=sims,
        alpha=alpha,
        max_n=max_n,
        seed=seed,
        confirm=confirm,
    )
