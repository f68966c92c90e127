import csv
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from study.models import Study
from study.selectors import EXPORT_COLUMNS, study_export_rows


class Command(BaseCommand):
    help = "Write a study's responses as CSV, one row per response, joined with item and AI data."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument(
            "--out", type=Path, help="CSV file to write (default: standard output)."
        )

    def handle(self, *args, slug, out, **options):
        try:
            study = Study.objects.get(slug=slug)
        except Study.DoesNotExist:
            raise CommandError(f"no study with slug {slug!r}") from None
        if out is None:
            count = self._write(study, sys.stdout)
        else:
            if not out.parent.is_dir():
                raise CommandError(f"folder {out.parent} does not exist")
            # Write beside the target and rename, so a failed export never leaves half a file.
            partial = out.with_name(out.name + ".partial")
            with partial.open("w", newline="", encoding="utf-8") as handle:
                count = self._write(study, handle)
            partial.replace(out)
            self.stderr.write(f"wrote {count} responses to {out}")

    @staticmethod
    def _write(study: Study, handle) -> int:
        writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        count = 0
        for row in study_export_rows(study=study):
            writer.writerow(row)
            count += 1
        return count
