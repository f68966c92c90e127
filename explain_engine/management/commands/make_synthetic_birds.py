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
        parser.add_argument(
            "--distant-per-class",
            type=int,
            default=0,
            help="test-only photos of a distant bird in haze, per species (hard photos)",
        )

    def handle(self, *args, out, per_class, seed, image_size, distant_per_class, **options):
        try:
            generate_synthetic_birds(
                out,
                per_class=per_class,
                seed=seed,
                image_size=image_size,
                distant_per_class=distant_per_class,
            )
        except ValueError as error:
            raise CommandError(str(error)) from error
        total = 8 * (per_class + distant_per_class)
        self.stdout.write(f"wrote {total} images of 8 species to {out}")
