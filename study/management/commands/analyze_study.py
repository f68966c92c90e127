from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from study.models import Study
from study.results.analysis import (
    AnalysisError,
    NothingToAnalyse,
    report_svgs,
    report_text,
)
from study.results.reports import study_analysis


class Command(BaseCommand):
    help = "Print a study's outcome statistics per condition; optionally write its plots as SVG."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument(
            "--include-pilot", action="store_true", help="Keep pilot participants' responses."
        )
        parser.add_argument(
            "--include-excluded", action="store_true", help="Keep excluded participants' responses."
        )
        parser.add_argument("--svg-dir", type=Path, help="Existing folder to write the plots to.")

    def handle(self, *args, slug, include_pilot, include_excluded, svg_dir, **options):
        try:
            study = Study.objects.get(slug=slug)
        except Study.DoesNotExist:
            raise CommandError(f"no study with slug {slug!r}") from None
        if svg_dir is not None and not svg_dir.is_dir():
            raise CommandError(f"folder {svg_dir} does not exist")
        try:
            report = study_analysis(
                study=study, include_pilot=include_pilot, include_excluded=include_excluded
            )
        except NothingToAnalyse as error:
            flags = [
                flag
                for flag, count in (
                    ("--include-pilot", error.pilot),
                    ("--include-excluded", error.excluded),
                )
                if count
            ]
            hint = f"; to analyse them: analyze_study {slug} {' '.join(flags)}" if flags else ""
            raise CommandError(f"study {slug!r}: {error}{hint}") from error
        except AnalysisError as error:
            raise CommandError(f"study {slug!r}: {error}") from error
        self.stdout.write(report_text(report))
        if svg_dir is not None:
            for name, svg in report_svgs(report).items():
                path = svg_dir / f"{name}.svg"
                path.write_text(svg, encoding="utf-8")
                self.stderr.write(f"wrote {path}")
