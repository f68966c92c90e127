from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from study.design import demo_classifier
from study.design.demo import demo_classifier_train, demo_image_set


class Command(BaseCommand):
    help = (
        "Train the demo's classifier from scratch (seed 0, the demo's settings, on the demo's "
        "synthetic gulls) and write its checkpoint and record to study/design/demo_classifier/, "
        "which the demo then registers instead of training."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data-dir", type=Path, default=settings.BASE_DIR / "var" / "demo")
        parser.add_argument(
            "--out", type=Path, default=demo_classifier.SHIPPED_DIR, help="Where to write it."
        )

    def handle(self, *args, data_dir, out, **options):
        call_command("migrate", interactive=False, verbosity=0)
        data_dir.mkdir(parents=True, exist_ok=True)
        image_set = demo_image_set(data_dir=data_dir)
        classifier = demo_classifier_train(
            image_set=image_set,
            name="demo-classifier-for-shipping",
            progress=lambda entry: self.stdout.write(
                f"epoch {entry['epoch']}/{entry['epochs']}: train accuracy {entry['accuracy']:.1%}"
            ),
        )
        try:
            record = demo_classifier.shipped_classifier_write(classifier=classifier, directory=out)
        finally:
            classifier.checkpoint.delete(save=False)
            classifier.delete()
        self.stdout.write(
            f"{out / demo_classifier.CHECKPOINT}: sha256 {record['sha256']}, "
            f"test accuracy {record['test_accuracy']:.1%}"
        )
