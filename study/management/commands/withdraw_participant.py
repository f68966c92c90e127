from django.core.management.base import BaseCommand, CommandError

from study.models import Study
from study.researcher.services import WithdrawalError, participant_withdraw


class Command(BaseCommand):
    help = (
        "Delete a participant's data from a study at their request, found by their platform "
        "id (PROLIFIC_PID or MTurk workerId), and record an audit entry."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--platform-id", required=True)
        parser.add_argument("--reason", default="", help="Why, for the audit entry.")

    def handle(self, *args, slug, platform_id, reason, **options):
        try:
            study = Study.objects.get(slug=slug)
        except Study.DoesNotExist:
            raise CommandError(f"no study with slug {slug!r}") from None
        if not platform_id.strip():
            raise CommandError("--platform-id is empty")
        try:
            withdrawal = participant_withdraw(study=study, worker_id=platform_id, reason=reason)
        except WithdrawalError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"deleted the participant and {withdrawal.responses_deleted} answers from "
            f"{study.slug!r} (condition {withdrawal.condition_name}); audit entry "
            f"#{withdrawal.pk}"
        )
