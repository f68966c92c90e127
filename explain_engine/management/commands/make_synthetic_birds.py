from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from explain_engine.datasets.synthetic_birds import generate_synthetic_birds


class Command(BaseCommand):
    help = "Draw a synthetic fine-grained gull data set in the CUB-200-2011 layout."

    def add_arguments(self, parser):
        parser.add_argument("out", type=Path, help="Folder to write (must not hold a data set).")
        parser.add_argument("--per-class", type=int, default=60)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--image-size", type=int, default=224)

    def handle(self, *args, out, per_class, seed, image_size, **options):
        try:
            generate_synthetic_birds(out, per_class=per_class, seed=seed, image_size=image_size)
        except ValueError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"wrote {8 * per_class} images of 8 species to {out}")
