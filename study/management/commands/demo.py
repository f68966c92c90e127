import logging
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from study.design.demo import DEMO_WORKERS, demo_prepare, demo_researcher_reset
from study.design.demo_workers import demo_server_start
from study.design.preparation import step_line
from study.models import PreparationStep

PARTICIPANT_QUERY = "?PROLIFIC_PID=demo-participant-1&STUDY_ID={slug}&SESSION_ID=demo-session-1"


class Command(BaseCommand):
    help = (
        "Serve the embedded demo at once and prepare it behind (data, classifier, "
        "explanations, studies); a second run picks up where the first stopped."
    )

    def add_arguments(self, parser):
        parser.add_argument("--data-dir", type=Path, default=settings.BASE_DIR / "var" / "demo")
        parser.add_argument("--addr", default="127.0.0.1:8000")
        parser.add_argument("--no-serve", action="store_true", help="Set up, print, and exit.")
        parser.add_argument(
            "--workers",
            type=int,
            default=DEMO_WORKERS,
            help="Precompute worker processes (0: compute in this process).",
        )

    def handle(self, *args, data_dir, addr, no_serve, workers, **options):
        if workers < 0:
            raise CommandError(f"--workers must be 0 or more, not {workers}")
        server = None
        # Ctrl-C may come at any moment, the web server's start included: always the same
        # one line, never a traceback.
        try:
            call_command("migrate", interactive=False, verbosity=0)
            # Celery's and kombu's log lines say nothing a newcomer can act on here.
            logging.getLogger("celery").setLevel(logging.ERROR)
            logging.getLogger("kombu").setLevel(logging.ERROR)
            data_dir.mkdir(parents=True, exist_ok=True)
            username, password = demo_researcher_reset()
            base = f"http://{addr}"
            if not no_serve:
                server = demo_server_start(addr, log_path=data_dir / "server.log")
                self.stdout.write(self.style.SUCCESS(f"Serving on {base}/ (log: server.log)"))
            self._links(base, username, password, ["demo"])
            self.stdout.write("Preparing the demo (the researcher pages show the same progress):")
            site = demo_prepare(
                data_dir=data_dir,
                log=self.stdout.write,
                show=self._show,
                workers=workers,
                worker_log=data_dir / "workers.log",
            )
            self.stdout.write(self.style.SUCCESS("\nThe demo is ready."))
            slugs = [site.study.slug] + ([site.compare_study.slug] if site.compare_study else [])
            self._links(base, username, password, slugs)
            self.stdout.write(
                f"  Export: python manage.py export_study {site.study.slug} --zip export.zip"
            )
            if server is not None:
                self.stdout.write("Press Ctrl-C to stop.")
                server.wait()
        except KeyboardInterrupt:
            self.stdout.write("\nStopped. Run the demo again: it picks up where it stopped.")
        finally:
            if server is not None and server.poll() is None:
                server.terminate()
                server.wait()

    def _links(self, base: str, username: str, password: str, slugs: list[str]) -> None:
        for slug in slugs:
            query = PARTICIPANT_QUERY.format(slug=slug)
            self.stdout.write(f"  Participant link ({slug}): {base}/s/{slug}/{query}")
        self.stdout.write(
            "    (change PROLIFIC_PID to be a new participant; until the study is launched "
            "the link says it is being prepared)\n"
            f"  Researcher pages: {base}/researcher/  user {username!r}, password {password!r}"
        )

    def _show(self, step: PreparationStep) -> None:
        """Redraw a running step in place on a terminal; elsewhere (a log, a pipe) write
        each step once when it starts and once when it ends."""
        line = step_line(step)
        running = step.status == PreparationStep.Status.RUNNING
        if self.stdout.isatty():
            self.stdout.write("\r  " + line.ljust(90), ending="" if running else "\n")
            self.stdout.flush()
        elif not running or step.key != getattr(self, "_shown_key", None):
            self.stdout.write("  " + line)
        self._shown_key = step.key
