from collections import Counter
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from study.design.creation import study_warnings
from study.design.launch import study_launch_problems
from study.design.study_files import StudyFileError, study_create_from_toml


class Command(BaseCommand):
    help = "Create a draft study from a TOML file (see examples/study.toml for the schema)."

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="path", type=Path, required=True, metavar="FILE")

    def handle(self, *args, path, **options):
        try:
            study = study_create_from_toml(path=path)
        except StudyFileError as error:
            raise CommandError(f"{path}: {error}") from error
        counts = Counter(study.items.values_list("role", flat=True))
        self.stdout.write(
            f"created draft study {study.slug!r}: {study.conditions.count()} condition(s), "
            + ", ".join(f"{counts[role]} {role}" for role in sorted(counts))
            + " item(s)"
        )
        for warning in study_warnings(study=study):
            self.stdout.write(f"warning: {warning}")
        problems = study_launch_problems(study=study)
        if problems:
            self.stdout.write("before launch:\n" + "\n".join(f"  - {p}" for p in problems))
            self.stdout.write(
                f"compute them with: python manage.py precompute --study {study.slug}"
            )
