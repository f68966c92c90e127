from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from study.design.demo import demo_prepare


class Command(BaseCommand):
    help = "Set up the embedded demo (data, classifier, explanations, study) and serve it."

    def add_arguments(self, parser):
        parser.add_argument("--data-dir", type=Path, default=settings.BASE_DIR / "var" / "demo")
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument("--no-serve", action="store_true", help="Set up, print, and exit.")

    def handle(self, *args, data_dir, addr, no_serve, **options):
        call_command("migrate", interactive=False, verbosity=0)
        site = demo_prepare(data_dir=data_dir, log=self.stdout.write)
        base = f"http://{addr}"
        self.stdout.write(self.style.SUCCESS("\nThe demo is ready."))
        self.stdout.write(
            f"  Participant link: {base}/s/{site.study.slug}/"
            "?PROLIFIC_PID=demo-participant-1&STUDY_ID=demo&SESSION_ID=demo-session-1\n"
            "    (change PROLIFIC_PID to be a new participant)\n"
            f"  Researcher pages: {base}/researcher/  user {site.researcher_username!r}, "
            f"password {site.researcher_password!r}\n"
            f"  Dashboard: {base}/researcher/studies/{site.study.slug}/\n"
            f"  Export: python manage.py export_study {site.study.slug} --zip export.zip"
        )
        if site.compare_study is not None:
            self.stdout.write(
                f"  Comparative study (SAG A/B questions): {base}/s/{site.compare_study.slug}/"
                "?PROLIFIC_PID=demo-participant-1&STUDY_ID=demo-compare"
                "&SESSION_ID=demo-session-1"
            )
        if not no_serve:
            call_command("runserver", addr, use_reloader=False)
