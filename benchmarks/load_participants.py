"""Participants under load: gunicorn + PostgreSQL, driven over HTTP through the real flow.

Run (PostgreSQL on 127.0.0.1 as in CI; takes a few minutes)::

    .venv/bin/python benchmarks/load_participants.py [--participants 500] [--workers 4]

What it does:
1. Creates a fresh database (``--database``, default ``explainstudy_load``), migrates it, and
   sets up a launched Prolific study on a small synthetic image set: conditions "none" and
   "gradcam" (explanations precomputed in-process), ``--trials`` main trials each.
2. Starts gunicorn (``--workers`` sync processes) on a free port with production-like
   settings (DEBUG off, a raised entry rate limit: every bot comes from 127.0.0.1).
3. Participant run: ``--participants`` bots, arriving evenly over ``--ramp-seconds``, each
   walking entry, consent, instructions, every trial (page, stimulus and explanation images,
   think time, answer), questionnaire and the completion redirect. With ``--reload-rate`` a
   bot reloads a trial page before answering; with ``--double-rate`` it sends the same answer
   twice at once (a double-click). Latency per request kind, errors, answers per second.
4. Integrity: every answer the server acknowledged (302) is in the database exactly once,
   with the value sent; no participant has two responses for one item.
5. Capacity: with no think time, ``--capacity-clients`` clients post answers as fast as
   they can (the same trial POST + redirected GET the participants do), then the same
   clients hit a bare view that inserts one row with one SQL statement; the ratio of the two
   request rates is the cost of our flow over the limit of this stack. Then the same clients
   hit the "answer floor" (benchmarks/load_wsgi.py): the least any answer must do, in raw
   SQL (lock the participant, insert, advance); its rate over the bare insert's is the most
   that any design of the answer request could reach.
6. Fault (``--restart-postgres-after S``): PostgreSQL is restarted S seconds into the
   participant run. Requests meanwhile get 503 "try again" pages; bots wait and reload, as
   the page asks; the integrity check then shows whether any answer was lost or doubled.

Prints one table per run. Numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONFIDENCE_ASKED = 'name="confidence"'
TRIAL_POSITION = re.compile(r'name="trial_position" value="(\d+)"')
ANSWER_VALUE = re.compile(r'name="answer" value="([^"]+)"')
PAGE_NAME = re.compile(r'name="page" value="([a-z_]+)"')
STIMULUS_SRC = re.compile(r'<img class="stimulus-image[^"]*" src="([^"]+)"')
# A participant who gets an error page waits and reloads, up to a point.
RETRIES = 30
RETRY_SECONDS = 2.0
QUESTIONNAIRE = {
    "page": "questionnaire",
    "age_band": "25-34",
    "gender": "no answer",
    "bird_experience": "none",
    "trust_ai": "4",
    "explanation_helpfulness": "5",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_database(database_url: str, trials: int) -> str:
    """A fresh database with a launched study; returns the study's slug."""
    import psycopg

    admin_url, name = database_url.rsplit("/", 1)
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env=os.environ,
        check=True,
    )
    import django

    django.setup()
    import torch

    from explain_engine import classifiers
    from explain_engine.datasets.synthetic_birds import generate_synthetic_birds
    from explain_engine.models import Image
    from explain_engine.services.classifiers import classifier_register
    from explain_engine.services.images import image_set_import_cub
    from explain_engine.services.precompute import precompute_job_create
    from explain_engine.tasks import precompute_job_run
    from study.design.creation import study_create
    from study.design.launch import study_launch
    from study.design.spec import ConditionSpec, StudySpec

    work = Path(tempfile.mkdtemp(prefix="explainstudy-load-"))
    generate_synthetic_birds(work / "birds", per_class=6, seed=3, image_size=128)
    image_set = image_set_import_cub(root=work / "birds", name="load-birds")
    torch.manual_seed(0)
    checkpoint = work / "model.pt"
    torch.save(classifiers.build_model("small_cnn", 8).state_dict(), checkpoint)
    classifier = classifier_register(
        name="load-classifier",
        image_set=image_set,
        architecture="small_cnn",
        checkpoint_path=checkpoint,
        input_size=128,
    )
    images = list(image_set.images.filter(split=Image.Split.TEST).order_by("pk")[:trials])
    study = study_create(
        StudySpec(
            slug="load",
            title="Which gull?",
            classifier=classifier,
            platform="prolific",
            conditions=[
                ConditionSpec(name="none"),
                ConditionSpec(name="gradcam", explanation_method="gradcam"),
            ],
            main_images=images,
            participants_per_condition=100_000,
            consent_text="Consent",
            instructions_text="Pick the species.",
            completion_code="LOADTEST",
        )
    )
    job = precompute_job_create(classifier=classifier, methods=[("gradcam", {})], images=images)
    precompute_job_run.delay(job.pk)
    study_launch(study=study)
    from benchmarks.load_wsgi import BENCH_TABLES

    with django.db.connection.cursor() as cursor:
        cursor.execute(BENCH_TABLES)
    return study.slug


def prepare_site(database_url: str, trials: int) -> str:
    """Production-like settings in this process's environment (DEBUG off, a raised entry rate
    limit: every bot comes from 127.0.0.1, media in a fresh folder) and a fresh database with
    a launched study; returns the study's slug."""
    os.environ.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="false",
        EXPLAINSTUDY_ENTRY_RATE_LIMIT="1000000",
        EXPLAINSTUDY_MEDIA_ROOT=tempfile.mkdtemp(prefix="explainstudy-load-media-"),
        OMP_NUM_THREADS="1",
    )
    os.environ.pop("CELERY_BROKER_URL", None)
    return prepare_database(database_url, trials)


def start_gunicorn(
    port: int, workers: int, environment: dict, wait_seconds: float = 20
) -> subprocess.Popen:
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "benchmarks.load_wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--preload",  # import the app (and torch) once, before forking the workers
            "--backlog",
            "2048",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=environment,
    )
    for _ in range(int(wait_seconds * 10)):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("gunicorn did not start")


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    acknowledged: dict[tuple[str, int], str] = field(default_factory=dict)
    answers: int = 0
    completed: int = 0
    gave_up: int = 0


async def timed(session, stats: Stats, kind: str, method: str, url: str, **kwargs):
    started = time.perf_counter()
    try:
        async with session.request(method, url, allow_redirects=False, **kwargs) as response:
            body = await response.read()
            status = response.status
            location = response.headers.get("Location", "")
    except Exception as error:  # a refused or reset connection is an error to report
        stats.errors[f"{kind}: {type(error).__name__}"] += 1
        return None, b"", ""
    stats.latencies[kind].append(time.perf_counter() - started)
    if status >= 400:
        stats.errors[f"{kind}: HTTP {status}"] += 1
    return status, body, location


async def participant(session, base: str, slug: str, index: int, args, stats: Stats) -> None:
    rng = random.Random(index)
    think = args.think_ms / 1000
    # Participants arrive spread over the ramp, as a crowd platform fills a study's places.
    await asyncio.sleep(index * args.ramp_seconds / args.participants)
    query = {
        "js": "1",  # what static/js/entry.js adds in a browser
        "PROLIFIC_PID": f"load-{index}",
        "STUDY_ID": "load",
        "SESSION_ID": f"s{index}",
    }
    failures = 0
    for _ in range(RETRIES):
        status, _, location = await timed(
            session, stats, "entry", "GET", f"{base}/s/{slug}/", params=query
        )
        if status == 302:
            break
        await asyncio.sleep(RETRY_SECONDS)  # "please try again in a moment": they do
    else:
        stats.gave_up += 1
        return
    url = base + location
    code = location.rstrip("/").rsplit("/", 1)[1]
    for _ in range(500):
        status, body, _ = await timed(session, stats, "page GET", "GET", url)
        if status != 200:
            failures += 1
            if failures > RETRIES:
                stats.gave_up += 1
                return
            await asyncio.sleep(RETRY_SECONDS)  # a participant reloads after a failed page
            continue
        html = body.decode()
        page = PAGE_NAME.search(html)
        if page is None:
            stats.completed += 1
            return  # the completion page: nothing more to do
        page = page.group(1)
        if page == "consent":
            form = {"page": "consent", "consent": "yes"}
        elif page == "instructions":
            form = {"page": "instructions"}
        elif page == "trials":
            for src in STIMULUS_SRC.findall(html):
                kind = "explanation GET" if "/explanation/" in src else "image GET"
                await timed(session, stats, kind, "GET", base + src)
            await asyncio.sleep(rng.expovariate(1 / think) if think else 0)
            if rng.random() < args.reload_rate:
                continue  # reload: the same trial comes back, nothing recorded
            position = int(TRIAL_POSITION.search(html).group(1))
            answer = rng.choice(ANSWER_VALUE.findall(html))
            form = {
                "page": "trials",
                "trial_position": str(position),
                "answer": answer,
                "client_response_ms": str(rng.randint(800, 6000)),
                "viewport": "390x844",
            }
            if CONFIDENCE_ASKED in html:  # attention checks ask none
                form["confidence"] = str(rng.randint(1, 5))
            sends = 2 if rng.random() < args.double_rate else 1
            results = await asyncio.gather(
                *[
                    timed(session, stats, "answer POST", "POST", url, data=form)
                    for _ in range(sends)
                ]
            )
            if any(status == 302 for status, _, _ in results):
                stats.acknowledged[(code, position)] = answer
                stats.answers += 1
            continue
        elif page == "questionnaire":
            status, _, _ = await timed(
                session, stats, "questionnaire POST", "POST", url, data=QUESTIONNAIRE
            )
            if status == 302:
                stats.completed += 1
                return
            continue  # not saved: the page comes back and is sent again
        else:
            stats.errors[f"unexpected page {page}"] += 1
            return
        await timed(session, stats, f"{page} POST", "POST", url, data=form)


def first_choice_answer(html: str) -> dict | None:
    """The form that answers a trial page with its first choice; None off the trials."""
    position = TRIAL_POSITION.search(html)
    if position is None:
        return None
    form = {
        "page": "trials",
        "trial_position": position.group(1),
        "answer": ANSWER_VALUE.findall(html)[0],
        "client_response_ms": "1000",
        "viewport": "1280x800",
    }
    if CONFIDENCE_ASKED in html:  # attention checks ask none
        form["confidence"] = "3"
    return form


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def print_table(title: str, stats: Stats, seconds: float) -> None:
    print(
        f"\n{title}: {seconds:.1f} s, {stats.answers} answers, "
        f"{stats.answers / seconds:.1f} answers/s"
    )
    header = f"{'request':<22} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    print(header)
    print("-" * len(header))
    for kind, values in sorted(stats.latencies.items()):
        print(
            f"{kind:<22} {len(values):>7} {percentile(values, 0.5) * 1e3:>8.1f} "
            f"{percentile(values, 0.95) * 1e3:>8.1f} {percentile(values, 0.99) * 1e3:>8.1f} "
            f"{max(values) * 1e3:>8.1f}"
        )
    errors = ", ".join(f"{kind} x{n}" for kind, n in sorted(stats.errors.items())) or "none"
    print(f"errors: {errors}")
    print(f"participants completed: {stats.completed}, gave up after retries: {stats.gave_up}")


def check_integrity(stats: Stats) -> tuple[int, int, int]:
    """(acknowledged answers missing or different, duplicated responses, responses stored)."""
    from django.db.models import Count

    from study.models import Response

    stored = {
        (code, position): answer
        for code, position, answer in Response.objects.filter(
            participant__study__slug="load"
        ).values_list("participant__code", "trial_position", "answer")
    }
    missing = sum(1 for key, answer in stats.acknowledged.items() if stored.get(key) != answer)
    duplicated = (
        Response.objects.values("participant", "item", "phase")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .count()
    )
    return missing, duplicated, len(stored)


async def capacity(
    base: str, slug: str, clients: int, seconds: float, stand_in: str = ""
) -> tuple[float, Stats]:
    """Requests per second with no think time: participants through the whole flow (every
    request reads and most write the database), or a stand-in view of load_wsgi.py:
    "insert" (the bare one-row insert) or "answer-floor" (the least an answer must do)."""
    import aiohttp

    stats = Stats()
    stop = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=clients)

    async def client(index: int, session) -> None:
        if stand_in:
            url = f"{base}/bench/{stand_in}/?participant={index}"
            while time.perf_counter() < stop:
                status, _, _ = await timed(
                    session, stats, f"{stand_in} POST", "POST", url, data={"answer": "1"}
                )
                stats.answers += stand_in == "answer-floor" and status == 200
            return
        # One participant after another, each through the whole flow, until time is up.
        for run in range(1_000_000):
            if time.perf_counter() >= stop:
                return
            pid = f"capacity-{index}-{run}"
            query = {"js": "1", "PROLIFIC_PID": pid, "STUDY_ID": "load", "SESSION_ID": pid}
            status, _, location = await timed(
                session, stats, "entry", "GET", f"{base}/s/{slug}/", params=query
            )
            if status != 302:
                return
            url = base + location
            for form in ({"page": "consent", "consent": "yes"}, {"page": "instructions"}):
                await timed(session, stats, f"{form['page']} POST", "POST", url, data=form)
            while True:
                status, body, _ = await timed(session, stats, "page GET", "GET", url)
                form = first_choice_answer(body.decode())
                if status != 200 or form is None:
                    break
                status, _, _ = await timed(session, stats, "answer POST", "POST", url, data=form)
                stats.answers += status == 302
            await timed(session, stats, "questionnaire POST", "POST", url, data=QUESTIONNAIRE)

    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        await asyncio.gather(*[client(i, session) for i in range(clients)])
        elapsed = time.perf_counter() - started
    requests = sum(len(values) for values in stats.latencies.values())
    return requests / elapsed, stats


async def participants_run(base: str, slug: str, args) -> tuple[Stats, float]:
    import aiohttp

    stats = Stats()
    connector = aiohttp.TCPConnector(limit=args.participants)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.perf_counter()
        bots = [participant(session, base, slug, i, args, stats) for i in range(args.participants)]
        if args.restart_postgres_after:
            bots.append(restart_postgres(args.restart_postgres_after))
        await asyncio.gather(*bots)
        return stats, time.perf_counter() - started


async def restart_postgres(after_seconds: float) -> None:
    """Fault: restart the PostgreSQL cluster in the middle of the participants' run."""
    await asyncio.sleep(after_seconds)
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        "pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart",
        "-m", "fast",
    )  # fmt: skip
    await process.wait()
    print(
        f"PostgreSQL {version} restarted at {after_seconds:.0f} s "
        f"(down and back in {time.perf_counter() - started:.1f} s)",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=500)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--think-ms", type=float, default=3000, help="mean think time per trial")
    parser.add_argument(
        "--ramp-seconds", type=float, default=30, help="participants arrive evenly over this"
    )
    parser.add_argument("--reload-rate", type=float, default=0.1)
    parser.add_argument("--double-rate", type=float, default=0.1)
    parser.add_argument(
        "--restart-postgres-after",
        type=float,
        default=0,
        help="fault: restart PostgreSQL this many seconds into the participant run",
    )
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--capacity-clients", type=int, default=32)
    parser.add_argument("--capacity-seconds", type=float, default=20)
    parser.add_argument(
        "--database", default="postgres://postgres@127.0.0.1:5432/explainstudy_load"
    )
    args = parser.parse_args()

    slug = prepare_site(args.database, args.trials)
    port = free_port()
    server = start_gunicorn(port, args.workers, dict(os.environ))
    base = f"http://127.0.0.1:{port}"
    print(
        f"gunicorn {args.workers} workers, PostgreSQL, {os.cpu_count()} CPUs; "
        f"{args.participants} participants arriving over {args.ramp_seconds:.0f} s "
        f"x {args.trials} trials, think {args.think_ms:.0f} ms, "
        f"reload {args.reload_rate:.0%}, double submit {args.double_rate:.0%}"
    )
    try:
        stats, seconds = asyncio.run(participants_run(base, slug, args))
        print_table("participants", stats, seconds)
        from django.db import connection

        connection.close()  # a restart (the fault option) ended this process's connection too
        missing, duplicated, stored = check_integrity(stats)
        print(
            f"integrity: {len(stats.acknowledged)} acknowledged answers, {stored} stored, "
            f"{missing} missing or different, {duplicated} duplicated"
        )

        if args.skip_capacity:
            return
        clients, seconds = args.capacity_clients, args.capacity_seconds
        rates = {}
        for stand_in, title in (
            ("", f"capacity, flow ({clients} clients, no think time)"),
            ("insert", f"capacity, bare insert ({clients} clients)"),
            ("answer-floor", f"capacity, answer floor ({clients} clients)"),
        ):
            rate, capacity_stats = asyncio.run(capacity(base, slug, clients, seconds, stand_in))
            print_table(title, capacity_stats, seconds)
            rates[stand_in] = rate
        flow, bare, floor = rates[""], rates["insert"], rates["answer-floor"]
        print(
            f"\nrequests/s: flow {flow:.0f}, bare insert {bare:.0f}, answer floor {floor:.0f}; "
            f"flow / bare insert {flow / bare:.2f}, answer floor / bare insert {floor / bare:.2f}"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
