from django.core.management.base import BaseCommand, CommandError

from study.models import Study
from study.researcher.plans import study_plan
from study.results.planning import DEFAULT_SIMS, MAX_N, PlanError, plan_text


def _accuracies(pairs: list[str]) -> dict[str, float]:
    values = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            values[name] = float(value)
        except ValueError:
            raise CommandError(f"--accuracy {pair!r}: expected CONDITION=NUMBER") from None
    return values


class Command(BaseCommand):
    help = (
        "Power of a study's tests by simulation, before launch: planted accuracies per "
        "condition (or a smallest difference over the first condition), simulated "
        "participants through the study's own analysis; participants per condition for 80%."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument(
            "--accuracy",
            nargs="*",
            default=[],
            metavar="CONDITION=P",
            help="Planted accuracy of every condition, e.g. none=0.5 gradcam=0.65",
        )
        parser.add_argument(
            "--baseline", type=float, help="Accuracy of the first condition (with --difference)."
        )
        parser.add_argument(
            "--difference",
            type=float,
            help="Smallest improvement worth detecting: every other condition this much higher.",
        )
        parser.add_argument("--ability-sd", type=float, default=1.0, help="Log-odds (default 1).")
        parser.add_argument("--item-sd", type=float, default=0.5, help="Log-odds (default 0.5).")
        parser.add_argument("--inattentive-share", type=float, default=0.05, help="Default 0.05.")
        parser.add_argument(
            "--n",
            type=int,
            nargs="*",
            default=[],
            help="Participants per condition to simulate (default: the study's quota); other "
            "n are projected from these.",
        )
        parser.add_argument("--sims", type=int, default=DEFAULT_SIMS)
        parser.add_argument("--alpha", type=float, default=0.05)
        parser.add_argument("--max-n", type=int, default=MAX_N)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--confirm",
            action="store_true",
            help="Also simulate at each n found for 80%% power (slower).",
        )

    def handle(self, *args, slug, accuracy, baseline, difference, **options):
        try:
            study = Study.objects.get(slug=slug)
        except Study.DoesNotExist:
            raise CommandError(f"no study with slug {slug!r}") from None
        if bool(accuracy) == (baseline is not None or difference is not None):
            raise CommandError(
                "give either --accuracy for every condition, or --baseline and --difference"
            )
        if not accuracy and (baseline is None or difference is None):
            raise CommandError("--baseline and --difference go together")
        try:
            plan = study_plan(
                study=study,
                accuracies=_accuracies(accuracy) if accuracy else None,
                baseline=baseline,
                difference=difference,
                ability_sd=options["ability_sd"],
                item_sd=options["item_sd"],
                inattentive_share=options["inattentive_share"],
                n_values=tuple(options["n"]),
                sims=options["sims"],
                alpha=options["alpha"],
                max_n=options["max_n"],
                seed=options["seed"],
                confirm=options["confirm"],
            )
        except PlanError as error:
            raise CommandError(f"study {slug!r}: {error}") from error
        self.stdout.write(plan_text(plan))
