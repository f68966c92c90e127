from django.core.management.base import BaseCommand, CommandError

from study.design.launch import study_shortcut_audit
from study.design.question_types import QUESTION_TYPES, comparative_pair_counts
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
        if QUESTION_TYPES[study.question_type].needs_comparison:
            self._pairs(study)
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

    def _pairs(self, study: Study) -> None:
        """The comparative pairs each main item's SAG search offers, and the kinds drawn."""
        counts = comparative_pair_counts(study=study)
        kinds = list(counts["chosen"])
        self.stdout.write(
            f"Comparative pairs kept per main item ({', '.join(kinds)}), "
            f"{counts['items_without_pair']} of {counts['items']} items without one:"
        )
        for number, row in enumerate(counts["per_image"], start=1):
            kept = " / ".join(str(row["stored"][kind]) for kind in kinds)
            self.stdout.write(f"  item {number}: {row['valid']} valid ({kept})")
        chosen = ", ".join(f"{kind} {n}" for kind, n in counts["chosen"].items())
        self.stdout.write(f"Drawn for the main items: {chosen}")
