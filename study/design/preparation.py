"""Set-up work done while the site already serves: each step recorded with its progress, so
the researcher's pages show it live and a participant link of a study still being prepared
answers "being prepared" instead of failing.

The preparing process writes (`preparation_begin`, `StepProgress`); any web process reads
(`preparation_steps`, `study_being_prepared`). A step's progress row is written at most once
a second, so a fast loop costs the database nothing.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from study.models import PreparationStep

WRITE_EVERY_SECONDS = 1.0
BAR_WIDTH = 24


@dataclass(frozen=True)
class StepPlan:
    key: str
    label: str
    unit: str = ""


def preparation_begin(*, steps: list[StepPlan], studies: list[str]) -> None:
    """Declare the steps in order. A step finished by an earlier run stays finished (a second
    run picks up where the first stopped); any other is pending again."""
    for position, plan in enumerate(steps):
        step, created = PreparationStep.objects.get_or_create(
            key=plan.key,
            defaults={"label": plan.label, "position": position, "unit": plan.unit},
        )
        step.label, step.position, step.unit, step.studies = (
            plan.label,
            position,
            plan.unit,
            studies,
        )
        if step.status != PreparationStep.Status.DONE:
            step.status = PreparationStep.Status.PENDING
            step.done, step.total, step.detail = 0, None, ""
            step.started_at = step.finished_at = None
        step.save()
    PreparationStep.objects.exclude(key__in=[plan.key for plan in steps]).delete()


def preparation_steps() -> list[PreparationStep]:
    return list(PreparationStep.objects.all())


def study_being_prepared(*, slug: str) -> bool:
    """Whether an unfinished step prepares this study (there are a handful of rows)."""
    unfinished = PreparationStep.objects.exclude(status=PreparationStep.Status.DONE)
    return any(slug in step.studies for step in unfinished.only("studies"))


def step_eta(step: PreparationStep, *, now=None) -> timedelta | None:
    """The time left at the rate so far, once there is a rate to go by."""
    if step.status != PreparationStep.Status.RUNNING or not step.total or not step.done:
        return None
    elapsed = (now or timezone.now()) - step.started_at
    return elapsed / step.done * (step.total - step.done)


def step_line(step: PreparationStep, *, now=None) -> str:
    """`Training the classifier  [#########...............] 6/15 epochs, 0:41 left`."""
    if step.status == PreparationStep.Status.DONE:
        took = step.finished_at - step.started_at if step.started_at else None
        suffix = f"done in {clock_text(took)}" if took is not None else "done earlier"
        return f"{step.label}: {suffix}" + (f" ({step.detail})" if step.detail else "")
    if step.status == PreparationStep.Status.FAILED:
        return f"{step.label}: failed: {step.detail}"
    if step.total:
        filled = BAR_WIDTH * min(step.done, step.total) // step.total
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        eta = step_eta(step, now=now)
        left = f", {clock_text(eta)} left" if eta is not None else ""
        return f"{step.label}  [{bar}] {step.done}/{step.total} {step.unit}{left}"
    return f"{step.label} …" + (f" {step.detail}" if step.detail else "")


def clock_text(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    return f"{seconds // 60}:{seconds % 60:02d}"


class StepProgress:
    """The running step's row, kept up to date; `show` redraws it wherever the caller shows
    progress (the terminal). Use as a context manager: an exception marks the step failed."""

    def __init__(self, key: str, *, show: Callable[[PreparationStep], None]):
        self.step = PreparationStep.objects.get(key=key)
        self._show = show
        self._written_at = 0.0

    def start(self) -> "StepProgress":
        self.step.status = PreparationStep.Status.RUNNING
        self.step.started_at = timezone.now()
        self._write(force=True)
        return self

    def advance(self, done: int, total: int | None = None, detail: str | None = None) -> None:
        self.step.done = done
        if total is not None:
            self.step.total = total
        if detail is not None:
            self.step.detail = detail[:300]
        self._write()

    def finish(self) -> None:
        self.step.status = PreparationStep.Status.DONE
        if self.step.total:
            self.step.done = self.step.total
        self.step.finished_at = timezone.now()
        self._write(force=True)

    def stop(self, error: BaseException) -> None:
        """Interrupted (Ctrl-C): pending again, for the next run; any other error: failed."""
        if isinstance(error, KeyboardInterrupt):
            self.step.status = PreparationStep.Status.PENDING
            self.step.detail = "interrupted; the next run picks up here"
        else:
            self.step.status = PreparationStep.Status.FAILED
            self.step.detail = f"{type(error).__name__}: {error}"[:300]
        self.step.finished_at = timezone.now()
        self._write(force=True)

    @property
    def running(self) -> bool:
        return self.step.status == PreparationStep.Status.RUNNING

    def __enter__(self) -> "StepProgress":
        return self.start()

    def __exit__(self, error_type, error, traceback) -> None:
        if error is None:
            self.finish()
        else:
            self.stop(error)

    def _write(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._written_at < WRITE_EVERY_SECONDS:
            return
        self._written_at = now
        self.step.save()
        self._show(self.step)


def step_skip(key: str, *, detail: str = "", show: Callable[[PreparationStep], None]) -> None:
    """A step an earlier run finished (or that has nothing to do): shown as done."""
    step = PreparationStep.objects.get(key=key)
    step.status = PreparationStep.Status.DONE
    step.started_at = step.finished_at = None  # shown as "done earlier", not timed again
    if detail:
        step.detail = detail[:300]
    step.save()
    show(step)
