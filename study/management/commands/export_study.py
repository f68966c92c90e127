import csv
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from study.models import Study
from study.results.columns import EXPORT_COLUMNS
from study.results.exclusions import participants_apply_exclusions
from study.results.exports import ZIP_MEMBERS, study_export_zip
from study.results.rows import study_export_rows


class Command(BaseCommand):
    help = (
        "Write a study's responses as CSV, one row per response, joined with item and AI "
        "data; or with --zip, the whole export (responses, participants, codebook, design)."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        target = parser.add_mutually_exclusive_group()
        target.add_argument(
            "--out", type=Path, help="CSV file to write (default: standard output)."
        )
        target.add_argument(
            "--zip",
            type=Path,
            dest="zip_path",
            help=(
                f"Zip file to write, holding {', '.join(ZIP_MEMBERS)} and, once there are "
                "responses to analyse, analysis.txt and the plots as SVG."
            ),
        )

    def handle(self, *args, slug, out, zip_path, **options):
        try:
            study = Study.objects.get(slug=slug)
        except Study.DoesNotExist:
            raise CommandError(f"no study with slug {slug!r}") from None
        participants_apply_exclusions(study=study)
        if zip_path is not None:
            partial = self._partial(zip_path)
            with partial.open("wb") as handle:
                for chunk in study_export_zip(study=study):
                    handle.write(chunk)
            partial.replace(zip_path)
            self.stderr.write(f"wrote the export to {zip_path}")
        elif out is None:
            self._write(study, sys.stdout)
        else:
            partial = self._partial(out)
            with partial.open("w", newline="", encoding="utf-8") as handle:
                count = self._write(study, handle)
            partial.replace(out)
            self.stderr.write(f"wrote {count} responses to {out}")

    @staticmethod
    def _partial(path: Path) -> Path:
        if not path.parent.is_dir():
            raise CommandError(f"folder {path.parent} does not exist")
        # Write beside the target and rename, so a failed export never leaves half a file.
        return path.with_name(path.name + ".partial")

    @staticmethod
    def _write(study: Study, handle) -> int:
        writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        count = 0
        for row in study_export_rows(study=study):
            writer.writerow(row)
            count += 1
        return count
