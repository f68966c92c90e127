from django.core.management.base import BaseCommand, CommandError

from explain_engine.models import Classifier
from explain_engine.services.concept_models import concept_model_fit
from explain_engine.services.errors import EngineInputError

BAR_WIDTH = 30


class Command(BaseCommand):
    help = (
        "Fit an XNN concept model for a classifier on its train split (once per classifier, "
        "class subset and parameters) and print its faithfulness on the test split."
    )

    def add_arguments(self, parser):
        parser.add_argument("--classifier", required=True)
        parser.add_argument("--k", type=int, default=5, help="Number of concepts, 3 to 8.")
        parser.add_argument(
            "--classes",
            nargs="+",
            help="Classes explained together: output indices or class names (default: all).",
        )
        parser.add_argument(
            "--layer", help="Module name whose output is embedded (default: penultimate)."
        )
        parser.add_argument("--epochs", type=int, help="Fine-tuning epochs.")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--mode",
            choices=["per_class", "shared"],
            default="per_class",
            help="One concept model per class (one-vs-all, the authors' gull set-up; the "
            "default, for species studies) or one shared by all explained classes.",
        )
        parser.add_argument(
            "--accept-weak-fit",
            action="store_true",
            help="Keep a fit that fails XNN's success rule or R² bar (recorded on the concept "
            "model and shown by the study's launch checks) instead of refusing it.",
        )

    def handle(
        self, *args, classifier, k, classes, layer, epochs, seed, mode, accept_weak_fit, **options
    ):
        try:
            chosen = Classifier.objects.select_related("image_set").get(name=classifier)
        except Classifier.DoesNotExist:
            raise CommandError(f"no classifier named {classifier!r}") from None
        params = {"k": k, "seed": seed, "layer": layer, "mode": mode}
        if epochs is not None:
            params["epochs"] = epochs
        indices = None if classes is None else [_class_index(chosen, name) for name in classes]
        trained = []

        def progress(entry):
            trained.append(entry)
            share = entry["step"] / entry["steps"]
            filled = round(BAR_WIDTH * share)
            self.stdout.write(
                f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] model "
                f"{entry['model']}/{entry['models']}, attempt "
                f"{entry['attempt']}/{entry['max_attempts']}, {entry['stage']} epoch "
                f"{entry['epoch']}/{entry['epochs']}   ",
                ending="",
            )
            self.stdout.flush()

        try:
            concept_model = concept_model_fit(
                classifier=chosen,
                classes=indices,
                progress=progress,
                accept_weak_fit=accept_weak_fit,
                **params,
            )
        except EngineInputError as error:
            if trained:
                self.stdout.write("")
            raise CommandError(str(error)) from error
        self.stdout.write("" if trained else "already fitted with these parameters: reused")
        report = concept_model.fit_report
        self.stdout.write(
            f"concept model {concept_model.pk}: k={concept_model.k} on {chosen.name!r}, "
            f"classes {concept_model.classes}, layer {concept_model.layer!r}"
        )
        self.stdout.write(
            f"faithfulness on the test split: R² {concept_model.r2:.3f}, arg-max agreement "
            f"{concept_model.argmax_agreement:.1%} (fit {report['seconds']:.1f} s, "
            f"{len(report['attempts'])} attempt(s), success rule "
            f"{'met' if report['success'] else 'not met'})"
        )
        diversity = concept_model.diversity
        if diversity:
            self.stdout.write(
                "concept diversity (mean pairwise |correlation|, lower is more diverse): "
                f"activations {diversity['activations']:.3f}, heatmaps "
                f"{diversity['heatmaps']:.3f}"
            )
        if concept_model.accepted_weak_fit:
            self.stdout.write(
                "weak fit accepted (--accept-weak-fit): recorded on the concept model and "
                "shown by the study's launch checks"
            )


def _class_index(classifier: Classifier, name: str) -> int:
    """An output index from an index, a source name ("059.California_Gull") or a display name."""
    if name.isdigit():
        index = int(name)
        if index < len(classifier.class_order):
            return index
        raise CommandError(
            f"class index {index} is out of range: {classifier.name!r} has "
            f"{len(classifier.class_order)} classes (0..{len(classifier.class_order) - 1})"
        )
    labels = classifier.image_set.classes.all()
    display = {label.source_name: label.display_name for label in labels}
    for index, source_name in enumerate(classifier.class_order):
        if name in (source_name, display.get(source_name)):
            return index
    raise CommandError(
        f"unknown class {name!r} for {classifier.name!r}; its classes: "
        f"{', '.join(classifier.class_order)}"
    )
