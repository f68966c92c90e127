import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from explain_engine import classifiers
from explain_engine.models import ImageSet
from explain_engine.services.classifiers import classifier_register
from explain_engine.services.errors import EngineInputError


class Command(BaseCommand):
    help = "Register an existing state_dict checkpoint of a torchvision architecture."

    def add_arguments(self, parser):
        parser.add_argument("checkpoint", type=Path)
        parser.add_argument("--imageset", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--architecture", required=True, choices=classifiers.SUPPORTED_ARCHITECTURES
        )
        parser.add_argument("--input-size", type=int, default=224)
        parser.add_argument("--mean", type=float, nargs=3, default=classifiers.IMAGENET_MEAN)
        parser.add_argument("--std", type=float, nargs=3, default=classifiers.IMAGENET_STD)
        parser.add_argument(
            "--class-order",
            type=Path,
            help="JSON list of class folder names in output order (default: the set's order).",
        )
        parser.add_argument("--test-accuracy", type=float)

    def handle(
        self,
        *args,
        checkpoint,
        imageset,
        name,
        architecture,
        input_size,
        mean,
        std,
        class_order,
        test_accuracy,
        **options,
    ):
        try:
            image_set = ImageSet.objects.get(name=imageset)
        except ImageSet.DoesNotExist:
            raise CommandError(f"no image set named {imageset!r}") from None
        order = None
        if class_order is not None:
            try:
                order = json.loads(class_order.read_text())
            except (OSError, json.JSONDecodeError) as error:
                raise CommandError(f"--class-order {class_order}: {error}") from error
        try:
            classifier = classifier_register(
                name=name,
                image_set=image_set,
                architecture=architecture,
                checkpoint_path=checkpoint,
                input_size=input_size,
                mean=tuple(mean),
                std=tuple(std),
                class_order=order,
                test_accuracy=test_accuracy,
            )
        except EngineInputError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"registered {classifier.name!r} sha256 {classifier.checkpoint_sha256}")
