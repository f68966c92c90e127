"""What each participant request costs inside the web process, without HTTP or concurrency.

Run (PostgreSQL on 127.0.0.1 as in CI; takes about a minute)::

    .venv/bin/python benchmarks/request_costs.py [--participants 40] [--trials 12]

Sets up the same fresh database and launched study as load_participants.py, then walks
``--participants`` participants one after another through the flow (entry, consent,
instructions, every trial page with its photo and explanation, every answer, the
questionnaire) by calling the site's WSGI application directly, as gunicorn would, with
DEBUG off. Then the two stand-in views of load_wsgi.py: the bare one-row insert and the
answer floor. Prints the median and 90th percentile per request kind, in milliseconds.

The load benchmark's capacity figures also pay for gunicorn, the network stack, the load
client and PostgreSQL's own CPU; these are what the Django side adds, and vary far less
between runs, so they show what a change to a view or a service saves.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.load_participants import (  # noqa: E402
    QUESTIONNAIRE,
    STIMULUS_SRC,
    first_choice_answer,
    prepare_site,
)


class Site:
    """Requests to the WSGI application, timed by kind."""

    def __init__(self, application):
        self.application = application
        self.seconds: dict[str, list[float]] = defaultdict(list)

    def request(self, kind: str, method: str, path: str, query: str = "", form=None):
        body = urlencode(form or {}).encode()
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "HTTP_HOST": "127.0.0.1",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/x-www-form-urlencoded",
        }
        answer = {}

        def start_response(status, headers, exc_info=None):
            answer["status"] = int(status.split()[0])
            answer["headers"] = dict(headers)

        started = time.perf_counter()
        chunks = self.application(environ, start_response)
        content = b"".join(chunks)
        if hasattr(chunks, "close"):
            chunks.close()
        self.seconds[kind].append(time.perf_counter() - started)
        if answer["status"] >= 400:
            raise SystemExit(f"{kind} {path}: HTTP {answer['status']}")
        return answer["headers"], content.decode(errors="replace")


def participant(site: Site, slug: str, name: str) -> None:
    query = urlencode({"js": "1", "PROLIFIC_PID": name, "STUDY_ID": "load", "SESSION_ID": name})
    headers, _ = site.request("entry", "GET", f"/s/{slug}/", query)
    url = headers["Location"]
    site.request("consent POST", "POST", url, form={"page": "consent", "consent": "yes"})
    site.request("instructions POST", "POST", url, form={"page": "instructions"})
    while True:
        _, html = site.request("page GET", "GET", url)
        form = first_choice_answer(html)
        if form is None:
            break
        for src in STIMULUS_SRC.findall(html):
            kind = "explanation GET" if "/explanation/" in src else "image GET"
            site.request(kind, "GET", src)
        site.request("answer POST", "POST", url, form=form)
    site.request("questionnaire POST", "POST", url, form=QUESTIONNAIRE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=40)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument(
        "--database", default="postgres://postgres@127.0.0.1:5432/explainstudy_load"
    )
    args = parser.parse_args()
    slug = prepare_site(args.database, args.trials)
    from benchmarks.load_wsgi import application

    site = Site(application)
    # Warm up: the study's snapshot, templates, connections.
    for n in range(3):
        participant(site, slug, f"warm-{n}")
    site.seconds.clear()
    for n in range(args.participants):
        participant(site, slug, f"costs-{n}")
    for n in range(args.participants * 10):
        site.request("bare insert POST", "POST", "/bench/insert/")
        site.request(
            "answer floor POST",
            "POST",
            "/bench/answer-floor/",
            f"participant={n % 1024}",
            form={"answer": "1"},
        )

    print(
        f"in-process cost per request, {args.participants} participants x {args.trials} trials "
        "(PostgreSQL, DEBUG off)"
    )
    header = f"{'request':<22} {'count':>6} {'median ms':>10} {'p90 ms':>8}"
    print(header)
    print("-" * len(header))
    for kind, values in sorted(site.seconds.items()):
        ordered = sorted(values)
        p90 = ordered[int(0.9 * (len(ordered) - 1))]
        median = statistics.median(values)
        print(f"{kind:<22} {len(values):>6} {median * 1e3:>10.2f} {p90 * 1e3:>8.2f}")


if __name__ == "__main__":
    main()
