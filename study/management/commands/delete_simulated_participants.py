from django.core.management.base import BaseCommand, CommandError

from study.models import Study
from study.researcher.services import SimulatedDeletionError, simulated_participants_delete


class Command(BaseCommand):
    help = (
        "Delete a study's simulated participants (simulate_participants' bots) with their "
        "answers, and record an audit entry. People's data are not touched."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--reason", default="", help="Why, for the audit entry.")

    def handle(self, *args, slug, reason, **options):
        try:
            study = Study.objects.get(slug=slug)
        except Study.DoesNotExist:
            raise CommandError(f"no study with slug {slug!r}") from None
        try:
            deletion = simulated_participants_delete(study=study, reason=reason)
        except SimulatedDeletionError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(
            f"deleted {deletion.participants_deleted} simulated participants and "
            f"{deletion.responses_deleted} answers from {study.slug!r}; audit entry #{deletion.pk}"
        )
