from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from study.design.spec import StudyConfigError
from study.models import Study
from study.researcher.lifecycle import ALLOWED_FROM, study_change


class Command(BaseCommand):
    help = (
        "Launch (pilot or live), pause, resume, close, reopen or archive a study; every "
        "change is logged with who (--by) and why (--reason)."
    )

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("action", choices=list(ALLOWED_FROM))
        parser.add_argument("--reason", default="", help="Kept in the study's log.")
        parser.add_argument("--by", default="", help="Username to log as the actor.")
        parser.add_argument(
            "--shortcut-override-reason",
            default="",
            help="Launch although the shortcut audit fails; the reason is kept in the design.",
        )

    def handle(self, *args, slug, action, reason, by, shortcut_override_reason, **options):
        study = _study(slug)
        actor = _user(by)
        try:
            study = study_change(
                study=study,
                action=action,
                actor=actor,
                reason=reason[:500],
                shortcut_override_reason=shortcut_override_reason[:2000],
            )
        except StudyConfigError as error:
            raise CommandError(f"study {slug!r}: {error}") from error
        self.stdout.write(
            f"study {slug!r} is now {study.status}" + (" (archived)" if study.archived_at else "")
        )


def _study(slug: str) -> Study:
    try:
        return Study.objects.get(slug=slug)
    except Study.DoesNotExist:
        raise CommandError(f"no study with slug {slug!r}") from None


def _user(username: str):
    if not username:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"--by: no user named {username!r}")
    return user
