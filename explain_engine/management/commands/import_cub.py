from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from explain_engine.datasets.cub import CubFormatError
from explain_engine.services.images import image_set_import_cub


class Command(BaseCommand):
    help = "Import a CUB-200-2011-layout data set (the real one or a synthetic one)."

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--name", help="Image set name (default: the folder name).")
        parser.add_argument(
            "--classes",
            nargs="+",
            help='Only these classes, e.g. "059.California_Gull" or "California Gull".',
        )

    def handle(self, *args, path, name, classes, **options):
        name = name or path.resolve().name.lower().replace("_", "-")
        try:
            image_set = image_set_import_cub(root=path, name=name, classes=classes)
        except (CubFormatError, FileNotFoundError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(
            f"image set {image_set.name!r}: {image_set.images.count()} images, "
            f"{image_set.classes.count()} classes"
        )
