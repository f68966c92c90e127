"""The study's outcome statistics (`study.results.analysis`) over its export rows, and whose
responses they count (`AnalysisOptions`).

`study.results.analysis` is imported inside the functions that need it: statsmodels and
matplotlib take seconds to load, and only the researcher's analysis needs them, never a
participant's page.
"""

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from study.design.frozen import study_choices
from study.design.question_types import CONFIDENCE_SCALE, QUESTION_TYPES
from study.models import Study
from study.results.rows import study_export_rows

if TYPE_CHECKING:
    from study.results.analysis import ResponseCollector, StudyReport


def study_analysis(
    *, study: Study, include_pilot: bool = False, include_excluded: bool = False
) -> "StudyReport":
    """The study's outcome statistics over its export rows (see study.results.analysis).

    Raises study.results.analysis.AnalysisError when there is no main-phase response to analyse.
    """
    collector = study_response_collector(
        study=study, include_pilot=include_pilot, include_excluded=include_excluded
    )
    for row in study_export_rows(study=study):
        collector.add(row)
    return study_analysis_collected(study=study, collector=collector)


def study_response_collector(
    *, study: Study, include_pilot: bool = False, include_excluded: bool = False
) -> "ResponseCollector":
    """An empty collector for `study_export_rows`, set up for this study's question."""
    # Imported here: statsmodels and matplotlib take seconds to load, and only the
    # researcher's analysis needs them, never a participant's page.
    from study.results.analysis import ResponseCollector

    return ResponseCollector(
        n_choices=len(study_choices(study)),
        confidence_levels=CONFIDENCE_SCALE,
        question_type=study.question_type,
        include_pilot=include_pilot,
        include_excluded=include_excluded,
    )


def study_analysis_collected(*, study: Study, collector: "ResponseCollector") -> "StudyReport":
    """`study_analysis` of the export rows given to `collector`."""
    from study.results.analysis import analyze_collected

    conditions = list(study.conditions.order_by("pk").values_list("name", "show_ai_prediction"))
    shown_by_question = QUESTION_TYPES[study.question_type].shows_ai_prediction
    return analyze_collected(
        collector,
        condition_order=[name for name, _ in conditions],
        ai_answer_hidden={name for name, shown in conditions if not (shown or shown_by_question)},
    )


@dataclass(frozen=True)
class AnalysisOptions:
    """Whose responses the analysis counts; the dashboard carries them as GET parameters."""

    include_pilot: bool
    include_excluded: bool

    @property
    def query(self) -> str:
        return urlencode({name: int(value) for name, value in vars(self).items()})

    # The dashboard's toggle links.
    @property
    def query_pilot_toggled(self) -> str:
        return replace(self, include_pilot=not self.include_pilot).query

    @property
    def query_excluded_toggled(self) -> str:
        return replace(self, include_excluded=not self.include_excluded).query


def study_analysis_options(*, study: Study, params: Mapping[str, str]) -> AnalysisOptions:
    """The options a request asks for ('1' or '0' per option), the rest at their defaults:
    pilot participants count only while the study is a pilot (they are all its data then),
    excluded participants never. Raises ValueError naming a value that is not 0 or 1."""
    defaults = {
        "include_pilot": study.status == Study.Status.PILOT,
        "include_excluded": False,
    }
    options = {}
    for name, default in defaults.items():
        value = params.get(name)
        if value is None:
            options[name] = default
        elif value in ("0", "1"):
            options[name] = value == "1"
        else:
            raise ValueError(f"{name} must be 0 or 1, not {value!r}")
    return AnalysisOptions(**options)
