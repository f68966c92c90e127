from django.core.management.base import BaseCommand, CommandError

from study.flow.entry import EntryRefused
from study.flow.simulation import BotBehaviour, participants_simulate
from study.models import Study


def _condition_values(pairs: list[str], option: str, cast) -> dict:
    values = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            values[name] = cast(value)
        except ValueError:
            raise CommandError(f"{option} {pair!r}: expected CONDITION=NUMBER") from None
    return values


class Command(BaseCommand):
    help = "Run server-side bot participants through a study (pilots, load tests, checks)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--n", type=int, required=True, help="How many bots.")
        parser.add_argument("--accuracy", type=float, default=0.6, help="Default accuracy.")
        parser.add_argument("--response-ms", type=int, default=4000, help="Default mean time.")
        parser.add_argument(
            "--condition-accuracy",
            nargs="*",
            default=[],
            metavar="CONDITION=P",
            help="Per-condition accuracy, e.g. gradcam=0.8",
        )
        parser.add_argument(
            "--condition-response-ms",
            nargs="*",
            default=[],
            metavar="CONDITION=MS",
        )
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument(
            "--allow-live",
            action="store_true",
            help="Let bots take a live study's places (they stay flagged as simulated).",
        )

    def handle(
        self,
        *args,
        slug,
        n,
        accuracy,
        response_ms,
        condition_accuracy,
        condition_response_ms,
        seed,
        allow_live,
        **options,
    ):
        try:
            study = Study.objects.get(slug=slug)
        except Study.DoesNotExist:
            raise CommandError(f"no study with slug {slug!r}") from None
        if n < 1:
            raise CommandError(f"--n must be at least 1, not {n}")
        if study.status == Study.Status.LIVE and not allow_live:
            raise CommandError(
                f"study {slug!r} is live: simulated participants would take its places; "
                "pass --allow-live to run them anyway"
            )
        accuracies = _condition_values(condition_accuracy, "--condition-accuracy", float)
        times = _condition_values(condition_response_ms, "--condition-response-ms", int)
        behaviours = {
            name: BotBehaviour(
                accuracy=accuracies.get(name, accuracy),
                mean_response_ms=times.get(name, response_ms),
            )
            for name in {*accuracies, *times}
        }
        try:
            participants = participants_simulate(
                study=study,
                n=n,
                behaviour_by_condition=behaviours,
                default_behaviour=BotBehaviour(accuracy=accuracy, mean_response_ms=response_ms),
                seed=seed,
                allow_live=allow_live,
            )
        except (ValueError, EntryRefused) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"{len(participants)} simulated participants completed {slug!r}")
