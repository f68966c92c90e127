"""Write what one study shows and exports to a folder, so two trees can be diffed byte for byte.

    .venv/bin/python benchmarks/snapshot_pages.py OUT_DIR

Only stable interfaces are used (the management commands, the URLs), so the script runs
unchanged on a tree before and after a restructure. It builds a tiny study from the test
fixtures' synthetic birds (8 per class, 64 px, an untrained small CNN seeded 0) and a TOML
file with practice, attention and comprehension pages, launches it from the dashboard, walks
two participants through every page with fixed randomness, and writes each page's HTML
(GET and POST responses), the dashboard, and the export zip's members. Randomness (uuid4,
`secrets`, `random`) is seeded; what still differs between two runs of the same tree
(CSRF tokens, clock times, durations) is replaced by placeholders: see `_normalize`.
Compare with `diff -r BEFORE AFTER`.
"""

import csv
import io
import os
import random
import re
import shutil
import sys
import tempfile
import uuid
import zipfile
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("OMP_NUM_THREADS", "1")

STUDY_TOML = """
slug = "snap"
title = "Which gull is it?"
description = "Snapshot study."
classifier = "snap-classifier"
question_type = "species_identification"
platform = "prolific"
participants_per_condition = 5
time_limit_minutes = 30
owners = ["researcher"]
comprehension_max_attempts = 2
# one item per species passes "most frequent" and fails elimination: the audit is not
# what this snapshot compares (trees before the audit refuse this key: drop it there)
shortcut_margin_points = 100

[items]
per_class = 1
training = 1
attention = 1
seed = 2026

[texts]
consent_version = "1"
consent = "Consent **text**."
instructions = "Pick the *species*."
debrief = "Thank you."

[completion_codes]
completed = "CSNAP"
no_consent = "CNOCONS"
failed_comprehension = "CRETURN"

[exclusion_rules]
max_failed_attention_checks = 1

[[comprehension]]
question = "What do you do on each page?"
choices = ["Say which species", "Count the gulls"]
answer = 0

[[conditions]]
name = "none"

[[conditions]]
name = "gradcam"
method = "gradcam"
show_ai_prediction = true
"""

VOLATILE = [
    (
        re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"'),
        'name="csrfmiddlewaretoken" value="T"',
    ),
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(\+00:00|Z)?"), "<TIME>"),
    (re.compile(r"[A-Z][a-z]{2}\. \d{1,2}, \d{4}, \d{1,2}:\d\d [ap]\.m\."), "<TIME>"),
    (re.compile(r"\b[A-Z][a-z]+ \d{1,2}, \d{4}, \d{1,2}:\d\d [ap]\.m\."), "<TIME>"),
    # The dashboard's median duration: how long the scripted walk took on the clock.
    (re.compile(r"(completed participation: <strong>)[^<]*(</strong>)"), r"\1<S>\2"),
    # analysis.txt's response times (the server's clock), row by row
    (re.compile(r"(?m)^(  \S+ +\d+) +\d+ +\d+-\d+$"), r"\1 <MS> <MS>"),
]


# Export columns measured by the server's clock.
TIMED_COLUMNS = ("server_response_ms", "response_ms", "median_response_ms", "duration_s")


def _normalize(text: str) -> str:
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    header = text.partition("\n")[0]
    if any(column in header.split(",") for column in TIMED_COLUMNS):
        rows = list(csv.reader(io.StringIO(text)))
        timed = [i for i, column in enumerate(rows[0]) if column in TIMED_COLUMNS]
        for row in rows[1:]:
            for i in timed:
                row[i] = row[i] and "<MS>"
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        text = buffer.getvalue()
    return text


class Recorder:
    def __init__(self, out: Path):
        self.out = out
        self.count = 0

    def write(self, label: str, response) -> None:
        self.count += 1
        body = b"".join(response.streaming_content) if response.streaming else response.content
        head = f"status {response.status_code}\nlocation {response.get('Location', '')}\n"
        kind = response.get("Content-Type", "")
        if kind.startswith("text/") or "json" in kind:
            text = head + _normalize(body.decode())
            (self.out / f"{self.count:03d}-{label}.txt").write_text(text)
        else:
            (self.out / f"{self.count:03d}-{label}.txt").write_text(head + kind + "\n")
            (self.out / f"{self.count:03d}-{label}.bin").write_bytes(body)


def _seeded():
    """Patches that make uuid4, `secrets` and `random.SystemRandom` repeatable."""
    rng = random.Random(1234)
    return [
        mock.patch("uuid.uuid4", lambda: uuid.UUID(int=rng.getrandbits(128), version=4)),
        mock.patch("secrets.token_urlsafe", lambda n=32: f"{rng.getrandbits(8 * n):x}"[:n]),
        mock.patch("secrets.token_hex", lambda n=32: f"{rng.getrandbits(8 * n):0{2 * n}x}"),
        mock.patch("secrets.randbits", lambda k: rng.getrandbits(k)),
        mock.patch("random.SystemRandom", lambda: random.Random(rng.getrandbits(32))),
    ]


def main(out: Path) -> None:
    import django

    work = Path(tempfile.mkdtemp(prefix="snapshot-"))
    os.environ["EXPLAINSTUDY_MEDIA_ROOT"] = str(work / "media")
    # Before Django loads the models: a field's `default=uuid.uuid4` is bound then.
    patches = _seeded()
    for patch in patches:
        patch.start()
    django.setup()
    import torch
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    from config.celery_app import app as celery_app
    from explain_engine import classifiers

    settings.ALLOWED_HOSTS = ["testserver"]
    celery_app.conf.task_always_eager = True
    setup_test_environment()
    connection.settings_dict["TEST"]["NAME"] = str(work / "db.sqlite3")
    connection.creation.create_test_db(verbosity=0)

    try:
        torch.manual_seed(0)
        random.seed(0)
        birds = work / "tiny-gulls"
        quiet = {"stdout": io.StringIO(), "stderr": io.StringIO()}
        call_command(
            "make_synthetic_birds", str(birds), per_class=8, seed=7, image_size=64, **quiet
        )
        call_command("import_cub", str(birds), name="tiny-gulls", **quiet)
        checkpoint = work / "small_cnn.pt"
        torch.save(classifiers.build_model("small_cnn", 8).state_dict(), checkpoint)
        call_command(
            "register_classifier",
            str(checkpoint),
            imageset="tiny-gulls",
            name="snap-classifier",
            architecture="small_cnn",
            input_size=64,
            **quiet,
        )
        get_user_model().objects.create_user(
            username="researcher", password="a-long-test-password", is_staff=True
        )
        toml = work / "study.toml"
        toml.write_text(STUDY_TOML)
        created = io.StringIO()
        call_command("create_study", path=toml, stdout=created)
        (out / "000-create_study.txt").write_text(_normalize(created.getvalue()))
        call_command("precompute", study="snap", **quiet)
        _walk(Recorder(out), Client, out, work)
    finally:
        for patch in patches:
            patch.stop()
        connection.creation.destroy_test_db(str(work / "db.sqlite3"), verbosity=0)
        shutil.rmtree(work, ignore_errors=True)


def _walk(rec: Recorder, Client, out: Path, work: Path) -> None:
    from django.core.management import call_command

    researcher = Client()
    researcher.login(username="researcher", password="a-long-test-password")
    rec.write("dashboard-draft", researcher.get("/researcher/studies/snap/"))
    rec.write("launch", researcher.post("/researcher/studies/snap/launch", {"status": "live"}))
    rec.write("researcher-home", researcher.get("/researcher/"))

    for pid, wrong_comprehension in (("pid-1", False), ("pid-2", True)):
        client = Client()
        query = {"js": "1", "PROLIFIC_PID": pid, "STUDY_ID": "st", "SESSION_ID": f"se-{pid}"}
        entered = client.get("/s/snap/", query)
        rec.write(f"{pid}-entry", entered)
        url = entered["Location"]
        _participant(rec, client, url, pid, wrong_comprehension)
    rec.write("dashboard-live", researcher.get("/researcher/studies/snap/"))
    rec.write("export-csv", researcher.get("/researcher/studies/snap/responses.csv"))

    archive = work / "export.zip"
    call_command("export_study", "snap", zip_path=archive, stderr=io.StringIO())
    with zipfile.ZipFile(archive) as zipped:
        for name in sorted(zipped.namelist()):
            (out / f"zip-{name}").write_text(_normalize(zipped.read(name).decode()))


def _participant(rec: Recorder, client, url: str, pid: str, wrong_comprehension: bool) -> None:
    def get(label):
        response = client.get(url)
        rec.write(f"{pid}-{label}", response)
        return response

    def post(label, **data):
        response = client.post(url, data)
        rec.write(f"{pid}-{label}-post", response)
        return response

    get("consent")
    post("consent", page="consent", consent="yes")
    get("instructions")
    post("instructions", page="instructions")
    get("comprehension")
    post("comprehension", page="comprehension", q0="1" if wrong_comprehension else "0")
    if wrong_comprehension:
        get("instructions-again")
        post("instructions-again", page="instructions")
        get("comprehension-again")
        post("comprehension-again", page="comprehension", q0="0")
    for step in range(20):
        page = get(f"step{step}")
        for name in ("image", "explanation", "comparison"):
            for match in sorted(set(re.findall(rf"/{name}/[0-9a-f-]+/", page.content.decode()))):
                rec.write(f"{pid}-{name}{step}", client.get(url + match.lstrip("/")))
        context = page.context or {}
        if "feedback" in context:
            post(f"feedback{step}", page="feedback")
            continue
        if "trial" not in context:
            break
        trial = context["trial"]
        choices = [c.value for c in trial.choices]
        # An attention check asks no confidence.
        confidence = {} if trial.item.role == "attention" else {"confidence": 1 + step % 5}
        post(
            f"trial{step}",
            page="trials",
            trial_position=trial.position,
            answer=choices[step % len(choices)],
            client_response_ms=1000 + step,
            viewport="390x844",
            **confidence,
        )
    post(
        "questionnaire",
        page="questionnaire",
        age_band="25-34",
        gender="no answer",
        bird_experience="some",
        trust_ai="5",
        explanation_helpfulness="6",
        comments="Nice birds.",
    )
    get("done")


if __name__ == "__main__":
    target = Path(sys.argv[1])
    target.mkdir(parents=True, exist_ok=False)
    main(target)
    print(f"wrote {len(list(target.iterdir()))} files to {target}")
