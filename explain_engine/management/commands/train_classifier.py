from django.core.management.base import BaseCommand, CommandError

from explain_engine.models import ImageSet
from explain_engine.services.classifiers import classifier_train
from explain_engine.services.errors import EngineInputError


class Command(BaseCommand):
    help = "Train a small CNN from scratch on an image set's train split (CPU or GPU)."

    def add_arguments(self, parser):
        parser.add_argument("--imageset", required=True)
        parser.add_argument("--name", required=True, help="Name of the new classifier.")
        parser.add_argument("--architecture", help="Default: the demo's measured choice.")
        parser.add_argument("--epochs", type=int)
        parser.add_argument("--input-size", type=int)
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, imageset, name, architecture, epochs, input_size, seed, **options):
        try:
            image_set = ImageSet.objects.get(name=imageset)
        except ImageSet.DoesNotExist:
            raise CommandError(f"no image set named {imageset!r}") from None

        def progress(entry):
            self.stdout.write(
                f"epoch {entry['epoch']}/{entry['epochs']}: loss {entry['loss']:.3f}, "
                f"train accuracy {entry['accuracy']:.1%} ({entry['seconds']:.1f} s)"
            )

        try:
            classifier = classifier_train(
                image_set=image_set,
                name=name,
                seed=seed,
                architecture=architecture,
                epochs=epochs,
                input_size=input_size,
                progress=progress,
            )
        except (EngineInputError, ValueError) as error:
            raise CommandError(str(error)) from error
        chance = 1 / len(classifier.class_order)
        self.stdout.write(
            f"classifier {classifier.name!r} ({classifier.architecture}): test accuracy "
            f"{classifier.test_accuracy:.1%} (chance {chance:.1%}), "
            f"checkpoint sha256 {classifier.checkpoint_sha256[:12]}…"
        )
