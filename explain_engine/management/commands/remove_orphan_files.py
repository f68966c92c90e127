from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from explain_engine.orphans import orphan_files_remove


class Command(BaseCommand):
    help = (
        "Remove stored files that no image, classifier, concept model or explanation points "
        "at (left by a worker killed between writing and storing them). Files younger than "
        "--older-than-hours are kept: a running worker may be about to store them."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than-hours",
            type=float,
            default=settings.EXPLAINSTUDY_CLAIM_LEASE_SECONDS / 3600,
            help="Grace period (default: the claim lease, EXPLAINSTUDY_CLAIM_LEASE_SECONDS).",
        )
        parser.add_argument("--dry-run", action="store_true", help="List them, remove nothing.")

    def handle(self, *args, older_than_hours, dry_run, **options):
        if not 0 <= older_than_hours <= 24 * 365:
            raise CommandError(f"--older-than-hours must lie in 0..8760, not {older_than_hours}")
        removed = orphan_files_remove(older_than=timedelta(hours=older_than_hours), dry_run=dry_run)
        verb = "would remove" if dry_run else "removed"
        for orphan in removed:
            self.stdout.write(f"{verb} {orphan.name} ({orphan.size} bytes)")
        total = sum(orphan.size for orphan in removed)
        self.stdout.write(f"{verb} {len(removed)} orphan file(s), {total} bytes")
