"""The participant flow on explainstudy against the same flow on oTree 6, on one machine,
driven by one neutral load generator.

Set-up, once (oTree needs an environment of its own, see requirements.txt)::

    python3.11 -m venv benchmarks/peer_otree/.venv
    benchmarks/peer_otree/.venv/bin/pip install -r benchmarks/peer_otree/requirements.txt

Run (PostgreSQL on 127.0.0.1:5432, user postgres; the full-scale defaults take an hour)::

    .venv/bin/python benchmarks/peer_otree/run.py [--participants 300 500] [--think-ms 3000]
        [--saturation-clients 32] [--saturation-seconds 60] [--rounds 2] [--workers 4]
        [--sites explainstudy oTree]
    .venv/bin/python benchmarks/peer_otree/run.py --smoke     # 20 participants, a minute

Both sites show the same pages: consent, instructions, 12 trials (a photo, an explanation
image, a species and a confidence question), a questionnaire, the end; oTree's images are
the very files explainstudy's study shows. explainstudy runs under gunicorn (``--workers``
sync processes, ``benchmarks/load_wsgi.py``, DEBUG off), oTree under ``otree prodserver``
(one process, as oTree runs), each on its own PostgreSQL database created afresh
(``--database``, ``--otree-database``); both listen on 127.0.0.1 only.

The generator behaves like a browser and knows neither site: it GETs a page, fetches the
page's images it has not fetched before (a browser's cache), waits (exponential think time,
``--think-ms`` mean; none at saturation), fills the page's POST form (hidden inputs as
given, one option of each radio group drawn at random, the first named submit button) and
POSTs it, and follows the redirect. A participant is complete at a page with nothing to
submit, or when a POST redirects off the site (explainstudy's Prolific completion link).
Request kinds: "trial GET"/"trial POST" (a page with images and radio questions), "page
GET"/"page POST" (the others), "image GET".

Runs, interleaved (explainstudy, oTree, explainstudy, oTree, ... ``--rounds`` times):
saturation (``--saturation-clients`` clients, no think time, participants back to back for
``--saturation-seconds``: completed participants per second), then one run per
``--participants`` count, arriving over ``--ramp-seconds`` with think time (p50/p99 per
request kind). After each run the answers stored are counted against the trial POSTs the
site acknowledged: lost or doubled answers show as a difference. Each run also prints
where the machine's CPU went: the server, PostgreSQL and this generator (which shares the
cores, so a run that starves it reads slower for both sites).
"""

from __future__ import annotations

import argparse
import asyncio
import html.parser
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.load_participants import (  # noqa: E402
    free_port,
    percentile,
    prepare_site,
    start_gunicorn,
)

OTREE = HERE / ".venv" / "bin" / "otree"
PROJECT = HERE / "project"
TRIALS = 12
POSTGRES = "postgres://postgres@127.0.0.1:5432"
REDIRECTS = (301, 302, 303, 307, 308)
SITES = ("explainstudy", "oTree")


# ------------------------------------------------------------------ the neutral browser


class PageParser(html.parser.HTMLParser):
    """A page's images and its POST form (inputs, radio groups, submit buttons)."""

    def __init__(self):
        super().__init__()
        self.images: list[str] = []
        self.form_action: str | None = None
        self.in_form = False
        self.hidden: dict[str, str] = {}
        self.radios: dict[str, list[str]] = defaultdict(list)
        self.texts: list[str] = []
        self.submits: list[tuple[str | None, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])
        elif tag == "form" and (attrs.get("method") or "get").lower() == "post":
            self.in_form = True
            self.form_action = attrs.get("action") or ""
        elif self.in_form and tag == "input":
            kind = (attrs.get("type") or "text").lower()
            name = attrs.get("name")
            if kind == "hidden" and name:
                self.hidden[name] = attrs.get("value") or ""
            elif kind == "radio" and name:
                self.radios[name].append(attrs.get("value") or "")
            elif kind == "submit":
                self.submits.append((name, attrs.get("value") or ""))
            elif kind in ("text", "number") and name:
                self.texts.append(name)
        elif self.in_form and tag == "textarea" and attrs.get("name"):
            self.texts.append(attrs["name"])
        elif self.in_form and tag == "button" and (attrs.get("type") or "submit") == "submit":
            self.submits.append((attrs.get("name"), attrs.get("value") or ""))

    def handle_endtag(self, tag):
        if tag == "form":
            self.in_form = False

    def form(self, rng: random.Random) -> dict[str, str] | None:
        """What a person would submit; None when there is nothing to submit."""
        if self.form_action is None or not self.submits:
            return None
        data = dict(self.hidden)
        data.update({name: rng.choice(values) for name, values in self.radios.items()})
        data.update({name: "" for name in self.texts})
        named = [(name, value) for name, value in self.submits if name]
        if named:
            data[named[0][0]] = named[0][1]
        return data

    @property
    def is_trial(self) -> bool:
        return bool(self.images) and len(self.radios) >= 2


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    completed: int = 0
    trial_posts_acknowledged: int = 0


async def request(session, stats, kind, method, url, **kwargs):
    started = time.perf_counter()
    try:
        async with session.request(method, url, allow_redirects=False, **kwargs) as response:
            body = await response.read()
            status, location = response.status, response.headers.get("Location", "")
    except Exception as error:  # a refused or reset connection is a result to report
        stats.errors[f"{kind}: {type(error).__name__}"] += 1
        return None, b"", ""
    stats.latencies[kind].append(time.perf_counter() - started)
    if status >= 400:
        stats.errors[f"{kind}: HTTP {status}"] += 1
    return status, body, location


async def browse(session, start_url: str, rng: random.Random, think: float, stats: Stats):
    """One participant from the start link to the end; True if they got there."""
    host = urlsplit(start_url).netloc
    cached: set[str] = set()
    url = start_url
    for _ in range(200):
        status, body, location = await request(session, stats, "page GET", "GET", url)
        if status in REDIRECTS:  # oTree's start link answers 307
            url = urljoin(url, location)
            continue
        if status != 200:
            return False
        parser = PageParser()
        parser.feed(body.decode())
        if parser.is_trial:  # re-file the GET under its kind, now that it is known
            stats.latencies["trial GET"].append(stats.latencies["page GET"].pop())
        for src in parser.images:
            image = urljoin(url, src)
            if image not in cached:
                cached.add(image)
                await request(session, stats, "image GET", "GET", image)
        form = parser.form(rng)
        if form is None:
            stats.completed += 1
            return True
        if think:
            await asyncio.sleep(rng.expovariate(1 / think))
        kind = "trial POST" if parser.is_trial else "page POST"
        action = urljoin(url, parser.form_action)
        status, _, location = await request(session, stats, kind, "POST", action, data=form)
        if status in REDIRECTS:
            if parser.is_trial:
                stats.trial_posts_acknowledged += 1
            destination = urljoin(action, location)
            if urlsplit(destination).netloc != host:  # off to the crowd platform: done
                stats.completed += 1
                return True
            url = destination
        elif status is None or status >= 500:
            return False
        # 200 or 400: the form came back; the page is read again.
    return False


# ------------------------------------------------------------------ the two sites


@dataclass
class Site:
    name: str
    base: str
    start_urls: list[str]  # handed out in order, one per participant
    stored_answers: callable

    def take(self) -> str | None:
        return self.start_urls.pop(0) if self.start_urls else None


def database_reset(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def count(database: str, sql: str) -> int:
    import psycopg

    with psycopg.connect(f"{POSTGRES}/{database}") as connection:
        return connection.execute(sql).fetchone()[0]


def images_for_otree(slug: str) -> None:
    """The photos and explanation figures explainstudy's study shows, as oTree statics."""
    from explain_engine.models import Explanation
    from study.models import Study

    folder = PROJECT / "_static" / "gulls"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    study = Study.objects.get(slug=slug)
    items = list(study.items.select_related("image").order_by("pk"))[:TRIALS]
    for number, item in enumerate(items, start=1):
        with item.image.file.open("rb") as photo:
            (folder / f"photo-{number}.jpg").write_bytes(photo.read())
        explanation = Explanation.objects.filter(
            image=item.image, method="gradcam", status=Explanation.Status.DONE
        ).first()
        with explanation.overlay.open("rb") as figure:
            (folder / f"explanation-{number}.png").write_bytes(figure.read())


def otree_environment(database: str) -> dict:
    return {
        **os.environ,
        "DATABASE_URL": f"{POSTGRES}/{database}",
        "OTREE_PRODUCTION": "1",
        "OTREE_ADMIN_PASSWORD": "peer-benchmark",
        "OTREE_SECRET_KEY": "peer-benchmark-only",
        # prodserver starts a helper by the name `otree`: this environment's.
        "PATH": f"{OTREE.parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def start_otree(port: int, database: str) -> subprocess.Popen:
    import socket

    server = subprocess.Popen(
        [str(OTREE), "prodserver", f"127.0.0.1:{port}"],
        cwd=PROJECT,
        env=otree_environment(database),
        stdout=subprocess.DEVNULL,
        start_new_session=True,  # its timeout subprocess goes with it
    )
    for _ in range(1800):
        if server.poll() is not None:
            raise SystemExit(f"otree prodserver exited with {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.1)
    stop(server)
    raise SystemExit("otree prodserver did not start")


def stop(server: subprocess.Popen) -> None:
    try:
        os.killpg(server.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)


def otree_site(base: str, database: str, participants: int) -> Site:
    """A fresh oTree session with `participants` places; their start links."""
    subprocess.run(
        [str(OTREE), "create_session", "gulls", str(participants)],
        cwd=PROJECT,
        env=otree_environment(database),
        check=True,
        capture_output=True,
    )
    import psycopg

    with psycopg.connect(f"{POSTGRES}/{database}") as connection:
        session_id = connection.execute("SELECT max(id) FROM otree_session").fetchone()[0]
        codes = [
            row[0]
            for row in connection.execute(
                "SELECT code FROM otree_participant WHERE session_id = %s ORDER BY id",
                [session_id],
            )
        ]
    answered = (
        "SELECT count(*) FROM gulls_player WHERE species IS NOT NULL "
        f"AND session_id = {int(session_id)}"
    )
    return Site(
        "oTree 6.0.15",
        base,
        [f"{base}/InitializeParticipant/{code}" for code in codes],
        lambda: count(database, answered),
    )


def explainstudy_site(base: str, database: str, slug: str, participants: int, run: int) -> Site:
    before = count(database, "SELECT count(*) FROM study_response")
    # js=1 is what the entry page's script adds as it reloads (without it the page asks for
    # JavaScript and takes no place); the generator runs no script, so its links carry it
    links = [
        f"{base}/s/{slug}/?js=1&PROLIFIC_PID=peer-{run}-{index}&STUDY_ID=peer&SESSION_ID=s{index}"
        for index in range(participants)
    ]
    return Site(
        "explainstudy",
        base,
        links,
        lambda: count(database, "SELECT count(*) FROM study_response") - before,
    )


# ------------------------------------------------------------------ runs


def _ticks(path: str, fields: slice) -> int:
    try:
        text = Path(path).read_text()
    except OSError:  # the process ended while the table was read
        return 0
    return sum(int(value) for value in text.rsplit(")", 1)[1].split()[fields])


def cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of the whole machine (busy), PostgreSQL (the postmaster with the
    backends it has reaped, and the live ones) and this generator, from /proc; the server's
    share is what is left of the machine's."""
    hertz = os.sysconf("SC_CLK_TCK")
    busy = Path("/proc/stat").read_text().split("\n")[0].split()[1:]
    machine = sum(int(v) for v in busy) - int(busy[3]) - int(busy[4])  # less idle, iowait
    database = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if command == "postgres":
            # utime, stime, cutime, cstime: fields 14-17 of stat, 12-15 after the name
            database += _ticks(f"{entry}/stat", slice(11, 15))
    generator = os.times()
    return {
        "machine": machine / hertz,
        "database": database / hertz,
        "generator": generator.user + generator.system,
    }


def cpu_split(before: dict[str, float], after: dict[str, float]) -> str:
    used = {key: after[key] - before[key] for key in before}
    server = used["machine"] - used["database"] - used["generator"]
    return (
        f"CPU s: server {server:.0f}, PostgreSQL {used['database']:.0f}, "
        f"generator {used['generator']:.0f} (machine {used['machine']:.0f})"
    )


async def saturation(site: Site, clients: int, seconds: float) -> tuple[Stats, float]:
    import aiohttp

    stats = Stats()
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:

        async def client(index: int) -> None:
            rng = random.Random(index)
            while time.perf_counter() < deadline and (url := site.take()) is not None:
                await browse(session, url, rng, 0, stats)

        started = time.perf_counter()
        await asyncio.gather(*[client(index) for index in range(clients)])
    return stats, time.perf_counter() - started


async def crowd(site: Site, participants: int, think: float, ramp: float) -> tuple[Stats, float]:
    import aiohttp

    stats = Stats()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:

        async def one(index: int) -> None:
            await asyncio.sleep(index * ramp / participants)
            url = site.take()
            if url is not None:
                await browse(session, url, random.Random(index), think, stats)

        started = time.perf_counter()
        await asyncio.gather(*[one(index) for index in range(participants)])
    return stats, time.perf_counter() - started


def report(title: str, site: Site, stats: Stats, seconds: float, cpu: str) -> dict:
    stored = site.stored_answers()
    print(
        f"\n{title} — {site.name}: {seconds:.1f} s, {stats.completed} participants completed "
        f"({stats.completed / seconds:.2f}/s); trial answers acknowledged "
        f"{stats.trial_posts_acknowledged}, stored {stored}"
    )
    header = f"{'request':<12} {'count':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}"
    print(header)
    for kind, values in sorted(stats.latencies.items()):
        if values:
            print(
                f"{kind:<12} {len(values):>7} {percentile(values, 0.5) * 1e3:>8.1f} "
                f"{percentile(values, 0.99) * 1e3:>8.1f} {max(values) * 1e3:>8.1f}"
            )
    errors = ", ".join(f"{kind} x{n}" for kind, n in sorted(stats.errors.items())) or "none"
    print(f"errors: {errors}")
    print(cpu)
    return {
        "completed_per_s": stats.completed / seconds,
        "p99": {k: percentile(v, 0.99) for k, v in stats.latencies.items() if v},
        "lost_or_doubled": stored - stats.trial_posts_acknowledged,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, nargs="+", default=[300, 500])
    parser.add_argument("--think-ms", type=float, default=3000)
    parser.add_argument("--ramp-seconds", type=float, default=30)
    parser.add_argument("--saturation-clients", type=int, default=32)
    parser.add_argument("--saturation-seconds", type=float, default=60)
    parser.add_argument("--saturation-participants", type=int, default=2000,
                        help="places made per site for a saturation run")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--sites", nargs="+", choices=SITES, default=list(SITES),
                        help="which sites run (both by default)")  # fmt: skip
    parser.add_argument("--database", default="explainstudy_peer")
    parser.add_argument("--otree-database", default="otree_peer")
    parser.add_argument("--smoke", action="store_true",
                        help="20 participants, 200 ms think time, 10 s at saturation")  # fmt: skip
    args = parser.parse_args()
    if args.smoke:
        args.participants, args.think_ms, args.ramp_seconds = [20], 200, 5
        args.saturation_clients, args.saturation_seconds = 8, 10
        args.saturation_participants, args.rounds = 100, 1
    if not OTREE.exists():
        raise SystemExit(f"{OTREE} is missing: see the set-up in this script's docstring")

    slug = prepare_site(f"{POSTGRES}/{args.database}", TRIALS)
    images_for_otree(slug)
    database_reset(args.otree_database)
    ours_port, otree_port = free_port(), free_port()
    # A shared machine may take a while to import torch before the workers fork.
    ours = start_gunicorn(ours_port, args.workers, dict(os.environ), wait_seconds=180)
    theirs = start_otree(otree_port, args.otree_database) if "oTree" in args.sites else None
    ours_base, otree_base = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{otree_port}"
    results = defaultdict(list)
    run = 0
    try:
        for _ in range(args.rounds):
            for name in args.sites:
                run += 1
                places = args.saturation_participants
                site = (
                    explainstudy_site(ours_base, args.database, slug, places, run)
                    if name == "explainstudy"
                    else otree_site(otree_base, args.otree_database, places)
                )
                before = cpu_seconds()
                stats, seconds = asyncio.run(
                    saturation(site, args.saturation_clients, args.saturation_seconds)
                )
                cpu = cpu_split(before, cpu_seconds())
                title = f"saturation, {args.saturation_clients} clients, no think time"
                results[("saturation", name)].append(report(title, site, stats, seconds, cpu))
            for participants in args.participants:
                for name in args.sites:
                    run += 1
                    site = (
                        explainstudy_site(ours_base, args.database, slug, participants, run)
                        if name == "explainstudy"
                        else otree_site(otree_base, args.otree_database, participants)
                    )
                    before = cpu_seconds()
                    stats, seconds = asyncio.run(
                        crowd(site, participants, args.think_ms / 1000, args.ramp_seconds)
                    )
                    cpu = cpu_split(before, cpu_seconds())
                    title = f"{participants} participants, {args.think_ms:.0f} ms mean think time"
                    results[(participants, name)].append(report(title, site, stats, seconds, cpu))
    finally:
        if theirs is not None:
            stop(theirs)
        ours.terminate()
        ours.wait(timeout=30)

    print("\nsummary (each interleaved run)")
    for (scenario, name), runs in results.items():
        per_s = ", ".join(f"{r['completed_per_s']:.2f}" for r in runs)
        worst = ", ".join(f"{max(r['p99'].values()) * 1e3:.0f}" for r in runs)
        lost = ", ".join(str(r["lost_or_doubled"]) for r in runs)
        print(
            f"{scenario!s:<11} {name:<13} completed/s [{per_s}]  worst p99 ms [{worst}]  "
            f"stored - acknowledged [{lost}]"
        )


if __name__ == "__main__":
    main()
