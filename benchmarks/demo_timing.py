"""How long a newcomer waits: `make demo` on a fresh clone, idle and beside a CPU-bound process.

    .venv/bin/python benchmarks/demo_timing.py [--busy] [--repo DIR] [--port 8765]

Clones the repository's HEAD into a temporary folder (or uses `--repo`, which must hold no
earlier demo), runs `make install` there (timed), then `make demo` with the server on
`--port`, and reads the clock as a newcomer would:

- served: the first answer of `/healthz` after `make demo` started;
- each preparation step's start and end, from the demo's own `PreparationStep` rows (read
  from its SQLite file, so the probe takes no participant's place);
- launched: the end of the "Launching the studies" step.

Then it stops the demo with Ctrl-C (SIGINT, as a newcomer does), and runs `make demo` a second
time: served and launched again. `--busy` keeps one single-threaded CPU-bound process (a
Python busy loop) running beside the demo, from before install to the end. Prints a table.
Run it by hand on an otherwise idle machine; it takes 5 to 15 minutes.
"""

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUSY_LOOP = "while True: pass"
STEP_QUERY = (
    "SELECT key, label, started_at, finished_at, status FROM study_preparationstep "
    "ORDER BY position"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", action="store_true", help="a CPU-bound process beside it")
    parser.add_argument("--repo", type=Path, help="a checkout to use instead of a fresh clone")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--limit-s", type=float, default=1800, help="give up after this long")
    args = parser.parse_args()

    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if args.busy else None
    try:
        repo = args.repo or _fresh_clone()
        rows = [("install (make install)", _timed(["make", "install"], repo))]
        first = _run_demo(repo, args.port, args.limit_s)
        rows += [
            ("first run: served", first["served"]),
            *((f"  step: {label}", seconds) for label, seconds in first["steps"]),
            ("first run: launched", first["launched"]),
            ("first run: stopped by Ctrl-C", first["stopped"]),
        ]
        second = _run_demo(repo, args.port, args.limit_s)
        rows += [
            ("second run: served", second["served"]),
            ("second run: launched", second["launched"]),
        ]
    finally:
        if busy is not None:
            busy.kill()
    print(f"\nmake demo on {os.cpu_count()} cores, {'beside a busy loop' if busy else 'idle'}")
    print(f"{'what':<52} {'seconds':>8}")
    for what, seconds in rows:
        print(f"{what:<52} {'-' if seconds is None else f'{seconds:8.1f}':>8}")
    print("(served and launched: seconds since `make demo` started; steps: each one's duration)")


def _fresh_clone() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="demo-timing-")) / "explainstudy"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(folder)], check=True)
    return folder


def _timed(command: list[str], cwd: Path) -> float:
    start = time.monotonic()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def _run_demo(repo: Path, port: int, limit_s: float) -> dict:
    """Start `make demo`, wait until the studies are launched, stop it with SIGINT."""
    log = open(repo / "demo-timing.log", "ab")  # noqa: SIM115 (closed below)
    start = time.monotonic()
    wall_start = time.time()
    demo = subprocess.Popen(
        ["make", "demo", f"DEMO_ARGS=--addr 127.0.0.1:{port}"],
        cwd=repo,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    served = launched = None
    steps: list[tuple] = []
    try:
        while time.monotonic() - start < limit_s:
            if demo.poll() is not None:
                raise SystemExit(f"make demo exited with {demo.returncode}: see {log.name}")
            if served is None and _answers(f"http://127.0.0.1:{port}/healthz"):
                served = time.monotonic() - start
            steps = _steps(repo / "db.sqlite3")
            launch = [row for row in steps if row[0] == "demo-launch" and row[4] == "done"]
            if served is not None and launch:
                # A second run finds the studies launched by the first: launched once served.
                # It marks the first run's steps "done earlier", with no times.
                finished = launch[0][3]
                launched = max(served, _since(finished, wall_start)) if finished else served
                break
            time.sleep(0.5)
    finally:
        stop_start = time.monotonic()
        os.killpg(demo.pid, signal.SIGINT)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        log.close()
    # as read when the launch was seen (a later run marks every step "done earlier")
    durations = [
        (label, _since(finished, wall_start) - _since(started, wall_start))
        for _, label, started, finished, _ in steps
        if started and finished
    ]
    return {
        "served": served,
        "launched": launched,
        "steps": durations,
        "stopped": time.monotonic() - stop_start,
    }


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _steps(database: Path) -> list[tuple]:
    if not database.exists():
        return []
    try:
        with sqlite3.connect(database, timeout=5) as connection:
            return connection.execute(STEP_QUERY).fetchall()
    except sqlite3.Error:  # not migrated yet
        return []


def _since(timestamp: str, wall_start: float) -> float:
    """Seconds from `wall_start` to a UTC timestamp as Django stores it in SQLite."""
    moment = datetime.fromisoformat(timestamp).replace(tzinfo=UTC)
    return moment.timestamp() - wall_start


if __name__ == "__main__":
    main()
