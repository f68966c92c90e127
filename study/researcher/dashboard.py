"""Reads for the researcher's pages: which studies a researcher sees, the dashboard's live
numbers and recent activity, and its outcome statistics (hidden while accuracy is)."""

import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import Count, Q, QuerySet

from study.design.launch import study_launch_problems
from study.design.preparation import clock_text, preparation_steps, step_eta
from study.design.question_types import SpeciesOffered, study_species_offered
from study.models import Participant, Response, Study, StudyItem
from study.results.reports import AnalysisOptions, study_analysis

if TYPE_CHECKING:
    from study.results.analysis import StudyReport


def studies_visible_to(*, user) -> QuerySet[Study]:
    """The studies a researcher may see: those they own; staff see every study."""
    if user.is_staff:
        return Study.objects.all()
    return Study.objects.filter(owners=user)


def study_is_owned_by(*, study: Study, user) -> bool:
    return study.owners.filter(pk=user.pk).exists()


@dataclass(frozen=True)
class ConditionProgress:
    name: str
    explanation_method: str
    active: int
    completed: int
    responses: int
    correct: int

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.responses if self.responses else None


def study_progress(*, study: Study) -> list[ConditionProgress]:
    conditions = study.conditions.annotate(
        active=Count(
            "participants",
            filter=Q(participants__status=Participant.Status.ACTIVE, participants__preview=False),
            distinct=True,
        ),
        completed=Count(
            "participants",
            filter=Q(
                participants__status=Participant.Status.COMPLETED, participants__preview=False
            ),
            distinct=True,
        ),
    )
    answer_counts = {
        row["participant__condition"]: row
        for row in Response.objects.filter(
            participant__study=study, participant__preview=False, phase=StudyItem.Role.MAIN
        )
        .values("participant__condition")
        .annotate(responses=Count("pk"), correct=Count("pk", filter=Q(is_correct=True)))
    }
    return [
        ConditionProgress(
            name=condition.name,
            explanation_method=condition.explanation_method or "none",
            active=condition.active,
            completed=condition.completed,
            responses=answer_counts.get(condition.pk, {}).get("responses", 0),
            correct=answer_counts.get(condition.pk, {}).get("correct", 0),
        )
        for condition in conditions
    ]


@dataclass(frozen=True)
class ConditionStatus:
    name: str
    explanation_method: str
    quota: int
    started: int
    active: int
    completed: int
    timed_out: int
    returned: int  # declined consent or screened out by the comprehension check
    excluded: int
    main_responses: int
    main_correct: int

    @property
    def accuracy(self) -> float | None:
        return self.main_correct / self.main_responses if self.main_responses else None


@dataclass(frozen=True)
class ActivityEvent:
    at: datetime
    participant: int
    condition: str
    what: str


@dataclass(frozen=True)
class StudyDashboard:
    study: Study
    pilot_view: bool  # True: the counts are of pilot participants (the study is a pilot)
    conditions: list[ConditionStatus]
    other_mode_participants: int  # pilot participants of a live study, or the reverse
    simulated_participants: int  # simulate_participants' bots, pilot or live
    median_duration_s: float | None
    accuracy_visible: bool
    recent: list[ActivityEvent]
    problems: list[str]
    species: SpeciesOffered | None = None  # None: the answers are not species

    @property
    def totals(self) -> dict[str, int]:
        fields = ("started", "active", "completed", "timed_out", "returned", "excluded")
        return {field: sum(getattr(row, field) for row in self.conditions) for field in fields}


RECENT_EVENTS = 20


def study_accuracy_visible(*, study: Study) -> bool:
    """Accuracy so far is hidden while the study runs unless the researcher asks for it, so
    that no one stops or changes a study on a peek; a pilot or a closed study shows it."""
    if study.status in (Study.Status.LIVE, Study.Status.PAUSED):
        return study.show_accuracy
    return True


def _condition_statuses(study: Study, pilot_view: bool, participants) -> list[ConditionStatus]:
    """Each condition's participants by status (pilot or live ones, as `pilot_view`) and its
    main answers, excluded participants' left out."""
    status = Participant.Status

    def counted(*statuses) -> Count:
        return Count(
            "participants",
            filter=Q(
                participants__is_pilot=pilot_view,
                participants__preview=False,
                **({"participants__status__in": statuses} if statuses else {}),
            ),
            distinct=True,
        )

    conditions = study.conditions.order_by("pk").annotate(
        started=counted(),
        active=counted(status.ACTIVE),
        completed=counted(status.COMPLETED),
        timed_out=counted(status.TIMED_OUT),
        returned=counted(status.DECLINED, status.SCREENED_OUT),
        excluded=Count(
            "participants",
            filter=Q(
                participants__is_pilot=pilot_view,
                participants__excluded=True,
                participants__preview=False,
            ),
            distinct=True,
        ),
    )
    answers = {
        row["participant__condition"]: row
        for row in Response.objects.filter(
            participant__in=participants.filter(excluded=False), phase=StudyItem.Role.MAIN
        )
        .values("participant__condition")
        .annotate(responses=Count("pk"), correct=Count("pk", filter=Q(is_correct=True)))
    }
    return [
        ConditionStatus(
            name=c.name,
            explanation_method=c.explanation_method or "none",
            quota=c.quota or study.participants_per_condition,
            started=c.started,
            active=c.active,
            completed=c.completed,
            timed_out=c.timed_out,
            returned=c.returned,
            excluded=c.excluded,
            main_responses=answers.get(c.pk, {}).get("responses", 0),
            main_correct=answers.get(c.pk, {}).get("correct", 0),
        )
        for c in conditions
    ]


def study_dashboard(*, study: Study) -> StudyDashboard:
    """Live numbers for the researcher: participants by condition and status, median
    duration, accuracy so far (when visible), recent activity and launch problems."""
    pilot_view = study.status == Study.Status.PILOT
    participants = Participant.objects.filter(study=study, is_pilot=pilot_view, preview=False)
    status = Participant.Status

    rows = _condition_statuses(study, pilot_view, participants)
    durations = [
        (completed_at - started_at).total_seconds()
        for started_at, completed_at in participants.filter(
            status=status.COMPLETED, completed_at__isnull=False
        ).values_list("started_at", "completed_at")
    ]
    return StudyDashboard(
        study=study,
        pilot_view=pilot_view,
        conditions=rows,
        other_mode_participants=Participant.objects.filter(
            study=study, is_pilot=not pilot_view, preview=False
        ).count(),
        simulated_participants=Participant.objects.filter(study=study, simulated=True).count(),
        median_duration_s=statistics.median(durations) if durations else None,
        accuracy_visible=study_accuracy_visible(study=study),
        recent=study_recent_activity(study=study),
        problems=study_launch_problems(study=study) if study.status == Study.Status.DRAFT else [],
        species=study_species_offered(study=study),
    )


def study_recent_activity(*, study: Study, limit: int = RECENT_EVENTS) -> list[ActivityEvent]:
    """The latest entries, answers and endings, newest first."""
    participants = Participant.objects.filter(study=study, preview=False).select_related(
        "condition"
    )
    events = [
        ActivityEvent(p.started_at, p.pk, p.condition.name, "entered")
        for p in participants.order_by("-started_at")[:limit]
    ]
    events += [
        ActivityEvent(p.completed_at, p.pk, p.condition.name, "completed")
        for p in participants.filter(completed_at__isnull=False).order_by("-completed_at")[:limit]
    ]
    ended = participants.filter(
        status__in=[
            Participant.Status.DECLINED,
            Participant.Status.SCREENED_OUT,
            Participant.Status.TIMED_OUT,
        ]
    )
    events += [
        ActivityEvent(p.last_seen_at, p.pk, p.condition.name, p.get_status_display().lower())
        for p in ended.order_by("-last_seen_at")[:limit]
    ]
    responses = (
        Response.objects.filter(participant__study=study, participant__preview=False)
        .select_related("participant__condition")
        .order_by("-server_received_at")[:limit]
    )
    events += [
        ActivityEvent(
            r.server_received_at,
            r.participant_id,
            r.participant.condition.name,
            f"answered {r.get_phase_display().lower()} trial {r.trial_position + 1}",
        )
        for r in responses
    ]
    return sorted(events, key=lambda event: event.at, reverse=True)[:limit]


@dataclass(frozen=True)
class DashboardAnalysis:
    options: AnalysisOptions
    report: "StudyReport | None"
    problem: str  # why there is no report ("" when there is one)
    plots: dict[str, str]  # plot name: what it shows, for the image's alternative text


def study_dashboard_analysis(*, study: Study, options: AnalysisOptions) -> DashboardAnalysis | None:
    """The outcome statistics for the dashboard, or None while accuracy is hidden (the
    analysis shows accuracy, so it is hidden the same way)."""
    if not study_accuracy_visible(study=study):
        return None
    from study.results.analysis import PLOT_TITLES, AnalysisError

    try:
        report = study_analysis(study=study, **vars(options))
    except AnalysisError as error:
        return DashboardAnalysis(options=options, report=None, problem=str(error), plots={})
    return DashboardAnalysis(options=options, report=report, problem="", plots=PLOT_TITLES)


def study_analysis_plot(*, study: Study, name: str, options: AnalysisOptions) -> str | None:
    """One plot of the dashboard's analysis as an SVG document; None when there is no such
    plot, nothing to analyse, or accuracy is hidden."""
    from study.results.analysis import PLOT_TITLES, report_svgs

    if name not in PLOT_TITLES:
        return None
    analysis = study_dashboard_analysis(study=study, options=options)
    if analysis is None or analysis.report is None:
        return None
    return report_svgs(analysis.report)[name]


def preparation_rows() -> list[dict]:
    """The set-up steps (the demo's) with the time each has left at its rate so far."""
    rows = []
    for step in preparation_steps():
        eta = step_eta(step)
        rows.append({"step": step, "eta": clock_text(eta) if eta is not None else None})
    return rows
