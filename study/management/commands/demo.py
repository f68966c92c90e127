import logging
import shutil
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
        board = StepBoard(self.stdout)
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
                log=board.log,
                show=board.show,
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


class StepBoard:
    """The preparation as the terminal shows it: log lines and finished steps scroll up, and
    the running steps (several at once while the workers compute) are a block of progress
    bars redrawn in place below them. Elsewhere (a log file, a pipe) each step is written
    once when it starts and once when it ends, and log lines as they come."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.running: dict[str, str] = {}
        self.drawn = 0  # lines of the block now on the screen
        self.started: set[str] = set()

    def show(self, step: PreparationStep) -> None:
        line = "  " + step_line(step)
        running = step.status == PreparationStep.Status.RUNNING
        if not self.tty:
            if not (running and step.key in self.started):
                self.stream.write(line)
            self.started.add(step.key)
            return
        if running:
            self.running[step.key] = line
        else:
            self.running.pop(step.key, None)
        self._redraw(above=None if running else line)

    def log(self, text: str) -> None:
        if self.tty:
            self._redraw(above=text)
        else:
            self.stream.write(text)

    def _redraw(self, *, above: str | None) -> None:
        # Up to the block's first line and clear below (ANSI CPL and ED), then the new text
        # and the block again; block lines are cut to the width, so that each is one line.
        width = max(shutil.get_terminal_size().columns - 1, 20)
        out = f"\x1b[{self.drawn}F\x1b[J" if self.drawn else ""
        if above is not None:
            out += above + "\n"
        out += "".join(line[:width] + "\n" for line in self.running.values())
        self.drawn = len(self.running)
        self.stream.write(out, ending="")
        self.stream.flush()
