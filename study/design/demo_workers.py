"""The processes the embedded demo runs beside itself: the web server, which serves from the
first minute, and the precompute workers, which share the cores with it.

Workers are separate processes running `precompute --job`, each single-threaded and at a
lower CPU priority than the web server, so a participant's page stays quick while two cores
compute. Their rows are claimed one batch at a time (explain_engine's exactly-once claims),
so two workers on one job split it between them.
"""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from django.conf import settings

from explain_engine.job_progress import precompute_job_run_here
from explain_engine.models import PrecomputeJob
from explain_engine.services.precompute import precompute_job_release_claims

WORKER_NICENESS = 10
SERVER_START_SECONDS = 60


def _single_threaded_environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@contextmanager
def single_threaded():
    """PyTorch on one thread in this process, for work done beside worker processes: with
    its default of one thread per core it would take the workers' core too."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _lower_priority() -> None:
    os.nice(WORKER_NICENESS)


def precompute_job_compute(
    job: PrecomputeJob,
    *,
    workers: int,
    poll: Callable[[], None],
    log_path: Path | None = None,
    poll_seconds: float = 1.0,
    running: Sequence[subprocess.Popen] = (),
) -> None:
    """Compute the job's explanations with `workers` worker processes (0: here, in this
    process), calling `poll` about once a second, and wait for them and for the `running`
    ones (`precompute_workers_start`). Rows an interrupted earlier run left claimed are
    released first, unless workers are `running` already: in the embedded mode no other
    worker can hold them."""
    if not running:
        precompute_job_release_claims(job=job)
    if workers == 0 and not running:
        precompute_job_run_here(job, after_each_task=poll)
        return
    processes = [*running, *precompute_workers_start(job, count=workers, log_path=log_path)]
    try:
        while any(process.poll() is None for process in processes):
            poll()
            time.sleep(poll_seconds)
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            process.wait()
    failed = [process.returncode for process in processes if process.returncode != 0]
    if failed:
        where = f"; see {log_path}" if log_path else ""
        raise RuntimeError(f"{len(failed)} precompute worker(s) failed{where}")


def precompute_workers_start(
    job: PrecomputeJob, *, count: int, fit: bool = True, log_path: Path | None = None
) -> list[subprocess.Popen]:
    """Start `count` worker processes on the job (`precompute --job`, with `--no-fit` unless
    `fit`), single-threaded at a lower priority, and return at once."""
    return [
        _worker_start(job.pk, fit=fit, log_path=log_path, own_session=False) for _ in range(count)
    ]


def precompute_worker_start(*, job_id: int, log_path: Path | None = None) -> subprocess.Popen:
    """Start one worker process for the job (`precompute --job`) and return at once: the
    dashboard's start in the embedded mode, where no Celery worker listens. It runs
    single-threaded at a lower priority, in a session of its own, so it outlives the request
    and leaves the web server's cores to participants."""
    return _worker_start(job_id, fit=True, log_path=log_path, own_session=True)


def _worker_start(
    job_id: int, *, fit: bool, log_path: Path | None, own_session: bool
) -> subprocess.Popen:
    log = open(log_path, "a") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.Popen(
            [sys.executable, str(settings.BASE_DIR / "manage.py"), "precompute"]
            + ["--job", str(job_id)]
            + ([] if fit else ["--no-fit"]),
            cwd=settings.BASE_DIR,
            env=_single_threaded_environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_lower_priority,
            start_new_session=own_session,
        )
    finally:
        if log_path:
            log.close()


def demo_server_start(addr: str, *, log_path: Path) -> subprocess.Popen:
    """Start the development web server for `addr` (HOST:PORT) and wait until it answers.
    Its request log goes to `log_path`, not the terminal the progress is drawn on."""
    host, _, port = addr.rpartition(":")
    log = open(log_path, "a")  # noqa: SIM115 (the server process holds it)
    server = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "runserver", addr, "--noreload"],
        cwd=settings.BASE_DIR,
        env=_single_threaded_environment(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    deadline = time.monotonic() + SERVER_START_SECONDS
    try:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise RuntimeError(f"the web server stopped at start; see {log_path}")
            try:
                with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1):
                    return server
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"the web server did not answer within {SERVER_START_SECONDS} s")
    except BaseException:  # Ctrl-C while waiting included: the caller has no server to stop
        server.terminate()
        server.wait()
        raise
