from django.core.management.base import BaseCommand, CommandError

from study.design.launch import study_shortcut_audit
from study.models import Study


class Command(BaseCommand):
    help = (
        "Print a study's shortcut audit: how well each strategy that needs no understanding "
        "scores on its main items, against chance and the study's margin (launch checks it)."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")

    def handle(self, *args, slug, **options):
        try:
            study = Study.objects.get(slug=slug)
        except Study.DoesNotExist:
            raise CommandError(f"no study with slug {slug!r}") from None
        report = study_shortcut_audit(study=study)
        self.stdout.write(report.table())
        failures = report.failures
        if failures:
            verdict = "fails: " + ", ".join(
                row.strategy + (f" [{row.condition}]" if row.condition else "") for row in failures
            )
            if study.shortcut_override_reason:
                verdict += f" (overridden: {study.shortcut_override_reason})"
        else:
            verdict = "passes"
        self.stdout.write(f"{study.slug}: the shortcut audit {verdict}")
