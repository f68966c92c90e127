from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from study.models import Study
from study.results.exclusions import participants_apply_exclusions
from study.results.reconciliation import (
    ProlificFileError,
    prolific_reconcile,
    prolific_submissions_read,
)


class Command(BaseCommand):
    help = (
        "Compare Prolific's submissions export with the study's participants: list the "
        "mismatches and the participant ids to approve."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument(
            "--submissions",
            type=Path,
            required=True,
            help="The CSV that Prolific's submissions page exports.",
        )

    def handle(self, *args, slug, submissions, **options):
        try:
            study = Study.objects.get(slug=slug)
        except Study.DoesNotExist:
            raise CommandError(f"no study with slug {slug!r}") from None
        if not submissions.is_file():
            raise CommandError(f"no file {submissions}")
        try:
            with submissions.open(encoding="utf-8-sig", newline="") as handle:
                rows = prolific_submissions_read(handle)
        except (ProlificFileError, UnicodeDecodeError) as error:
            raise CommandError(f"{submissions}: {error}") from error
        participants_apply_exclusions(study=study)
        result = prolific_reconcile(study=study, submissions=rows)
        self.stdout.write(
            f"{result.submissions} submission(s) on Prolific, {result.matched} matched here"
        )
        self.stdout.write(f"mismatches: {len(result.mismatches)}")
        for mismatch in result.mismatches:
            self.stdout.write(f"  {mismatch.kind}: {mismatch.participant_id} ({mismatch.detail})")
        self.stdout.write(f"to approve: {len(result.approve_participant_ids)}")
        if result.approve_participant_ids:
            self.stdout.write("participant ids: " + ",".join(result.approve_participant_ids))
        if result.approve_submission_ids:
            self.stdout.write("submission ids: " + ",".join(result.approve_submission_ids))
