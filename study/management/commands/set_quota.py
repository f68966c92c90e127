from django.core.management.base import BaseCommand, CommandError

from study.management.commands.study_lifecycle import _study, _user
from study.researcher.lifecycle import LifecycleError, study_quota_set


class Command(BaseCommand):
    help = (
        "Raise or lower a study's places per condition (the default, or one condition's); "
        "not part of the frozen design; every change is logged."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument(
            "quota", help="Places per condition; 'default' returns a --condition to the default."
        )
        parser.add_argument("--condition", default="", help="One condition's quota.")
        parser.add_argument("--reason", default="", help="Kept in the study's log.")
        parser.add_argument("--by", default="", help="Username to log as the actor.")

    def handle(self, *args, slug, quota, condition, reason, by, **options):
        study = _study(slug)
        actor = _user(by)
        if quota == "default":
            value = None
        else:
            try:
                value = int(quota)
            except ValueError:
                raise CommandError(
                    f"quota {quota!r}: expected a whole number or 'default'"
                ) from None
        try:
            study_quota_set(
                study=study, quota=value, condition=condition, actor=actor, reason=reason[:500]
            )
        except LifecycleError as error:
            raise CommandError(f"study {slug!r}: {error}") from error
        self.stdout.write(f"study {slug!r}: quota of {condition or 'every condition'} set")
