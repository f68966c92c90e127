from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from explain_engine.job_progress import (
    precompute_job_run_here,
    precompute_job_wait,
    progress_line,
    runs_in_process,
)
from explain_engine.models import Classifier, Image, PrecomputeJob
from explain_engine.services.errors import EngineInputError
from explain_engine.services.precompute import MAX_BATCH_SIZE, precompute_job_create
from explain_engine.tasks import precompute_job_send
from study.design.creation import study_precompute_job
from study.flow.forms import BoundedJSONField
from study.models import Study


class Command(BaseCommand):
    help = (
        "Precompute predictions and explanations: everything a study shows (--study), "
        "or a classifier's images with the methods named."
    )

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--study", help="Slug of the study whose conditions to compute.")
        target.add_argument("--classifier")
        target.add_argument(
            "--job", type=int, help="Run an existing job (again): only what is not done yet."
        )
        parser.add_argument("--methods", nargs="+", help="Method slugs, e.g. gradcam.")
        parser.add_argument(
            "--params", default="{}", help='JSON parameters per method: {"gradcam": {...}}.'
        )
        parser.add_argument("--split", choices=["train", "test", "all"], default="test")
        parser.add_argument(
            "--batch-size",
            type=int,
            help="Images per worker task (default: the EXPLAINSTUDY_BATCH_SIZE setting).",
        )
        parser.add_argument("--wait", action="store_true", help="Show progress until done.")
        parser.add_argument(
            "--no-fit",
            action="store_true",
            help="Fit nothing: compute only the methods that need no fitted model, or whose "
            "model is fitted already (the rest wait for a run that fits).",
        )

    def handle(self, *args, study, classifier, job, methods, params, split, wait, **options):
        fit = not options["no_fit"]
        batch_size = options["batch_size"]
        if batch_size is not None and not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise CommandError(
                f"--batch-size must be at least 1 and at most {MAX_BATCH_SIZE}, not {batch_size}"
            )
        if job is not None:
            job = self._existing_job(job)
        elif study is not None:
            job = self._study_job(study, batch_size)
        else:
            job = self._classifier_job(classifier, methods, params, split, batch_size)
        names = sorted({spec["method"] for spec in job.methods})
        self.stdout.write(f"precompute job {job.pk}: {len(job.image_ids)} images × {names}")
        if runs_in_process():
            self._run_in_process(job, fit=fit)
            return
        # Commands run in autocommit, so the job row is already visible to any worker.
        if not precompute_job_send(job.pk, fit=fit):
            raise CommandError(
                f"cannot reach the Celery broker. Precompute job {job.pk} is saved and waits: "
                "it is sent by itself once the broker answers (Celery beat runs "
                "precompute_jobs_send_waiting every minute); nothing needs to be run again."
            )
        if wait:
            self._wait(job)

    def _run_in_process(self, job: PrecomputeJob, *, fit: bool) -> None:
        """The embedded default: the same tasks, run here, with the same progress bar."""
        precompute_job_run_here(job, after_each_task=lambda: self._show_progress(job), fit=fit)
        self._finish(job)

    def _existing_job(self, job_id: int) -> PrecomputeJob:
        try:
            return PrecomputeJob.objects.get(pk=job_id)
        except PrecomputeJob.DoesNotExist:
            raise CommandError(f"no precompute job {job_id}") from None

    def _study_job(self, slug: str, batch_size: int | None) -> PrecomputeJob:
        try:
            study = Study.objects.get(slug=slug)
        except Study.DoesNotExist:
            raise CommandError(f"no study with slug {slug!r}") from None
        try:
            return study_precompute_job(study=study, batch_size=batch_size)
        except EngineInputError as error:
            raise CommandError(str(error)) from error

    def _classifier_job(self, classifier, methods, params, split, batch_size) -> PrecomputeJob:
        if not methods:
            raise CommandError("--classifier needs --methods")
        try:
            chosen = Classifier.objects.get(name=classifier)
        except Classifier.DoesNotExist:
            raise CommandError(f"no classifier named {classifier!r}") from None
        field = BoundedJSONField(max_length=100_000, max_depth=8, empty_value={})
        try:
            params_by_method = field.clean(params)
        except ValidationError as error:
            raise CommandError(
                f"--params is not JSON we take: {' '.join(error.messages)}"
            ) from error
        if not isinstance(params_by_method, dict) or not all(
            isinstance(value, dict) for value in params_by_method.values()
        ):
            raise CommandError('--params must be {"method": {"name": value, ...}, ...}')
        images = Image.objects.filter(image_set=chosen.image_set)
        if split != "all":
            images = images.filter(split=split)
        try:
            return precompute_job_create(
                classifier=chosen,
                methods=[(slug, params_by_method.get(slug, {})) for slug in methods],
                images=list(images),
                batch_size=batch_size,
            )
        except EngineInputError as error:
            raise CommandError(str(error)) from error

    def _wait(self, job: PrecomputeJob) -> None:
        precompute_job_wait(job, every_second=lambda: self._show_progress(job))
        self._finish(job)

    def _show_progress(self, job: PrecomputeJob) -> None:
        self.stdout.write("\r" + progress_line(job), ending="")
        self.stdout.flush()

    def _finish(self, job: PrecomputeJob) -> None:
        self._show_progress(job)
        self.stdout.write("")
        job.refresh_from_db()
        if job.status == PrecomputeJob.Status.FAILED:
            raise CommandError(f"job {job.pk}: {job.error}")
