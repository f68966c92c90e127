import json
import time

from django.core.management.base import BaseCommand, CommandError

from explain_engine import selectors
from explain_engine.models import Classifier, Image, PrecomputeJob
from explain_engine.services import EngineInputError, precompute_job_create
from explain_engine.tasks import precompute_job_run
from study.models import Study
from study.services import study_precompute_job


class Command(BaseCommand):
    help = (
        "Precompute predictions and explanations: everything a study shows (--study), "
        "or a classifier's images with the methods named."
    )

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--study", help="Slug of the study whose conditions to compute.")
        target.add_argument("--classifier")
        parser.add_argument("--methods", nargs="+", help="Method slugs, e.g. gradcam.")
        parser.add_argument(
            "--params", default="{}", help='JSON parameters per method: {"gradcam": {...}}.'
        )
        parser.add_argument("--split", choices=["train", "test", "all"], default="test")
        parser.add_argument("--wait", action="store_true", help="Show progress until done.")

    def handle(self, *args, study, classifier, methods, params, split, wait, **options):
        if study is not None:
            job = self._study_job(study)
        else:
            job = self._classifier_job(classifier, methods, params, split)
        # Commands run in autocommit, so the job row is already visible to any worker.
        precompute_job_run.delay(job.pk)
        names = sorted({spec["method"] for spec in job.methods})
        self.stdout.write(f"precompute job {job.pk}: {len(job.image_ids)} images × {names}")
        if wait:
            self._wait(job)

    def _study_job(self, slug: str) -> PrecomputeJob:
        try:
            study = Study.objects.get(slug=slug)
        except Study.DoesNotExist:
            raise CommandError(f"no study with slug {slug!r}") from None
        try:
            return study_precompute_job(study=study)
        except EngineInputError as error:
            raise CommandError(str(error)) from error

    def _classifier_job(self, classifier, methods, params, split) -> PrecomputeJob:
        if not methods:
            raise CommandError("--classifier needs --methods")
        try:
            chosen = Classifier.objects.get(name=classifier)
        except Classifier.DoesNotExist:
            raise CommandError(f"no classifier named {classifier!r}") from None
        try:
            params_by_method = json.loads(params)
        except json.JSONDecodeError as error:
            raise CommandError(f"--params is not JSON: {error}") from error
        images = Image.objects.filter(image_set=chosen.image_set)
        if split != "all":
            images = images.filter(split=split)
        try:
            return precompute_job_create(
                classifier=chosen,
                methods=[(slug, params_by_method.get(slug, {})) for slug in methods],
                images=list(images),
            )
        except EngineInputError as error:
            raise CommandError(str(error)) from error

    def _wait(self, job: PrecomputeJob) -> None:
        while True:
            progress = selectors.precompute_job_progress(job=job)
            self.stdout.write(
                f"\r{progress.done}/{progress.total} done, {progress.failed} failed", ending=""
            )
            job.refresh_from_db()
            if job.status in (PrecomputeJob.Status.DONE, PrecomputeJob.Status.FAILED):
                self.stdout.write("")
                break
            time.sleep(1)
        if job.status == PrecomputeJob.Status.FAILED:
            raise CommandError(f"job {job.pk}: {job.error}")
