"""The embedded SQLite database holds a demo: two processes writing at once wait for each
other instead of failing, and a command that still finds it locked says so in one line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Read, then write, in one transaction: the shape of a participant's answer and of a worker
# storing an explanation. In SQLite's default (deferred) transactions the second process's
# upgrade from reading to writing fails at once with "database is locked".
WRITER = """
import django, sys
django.setup()
from django.contrib.auth.models import Group
from django.db import transaction
from django.test import Client

name, rounds = sys.argv[1], int(sys.argv[2])
client = Client()
for i in range(rounds):
    with transaction.atomic():
        Group.objects.count()
        Group.objects.create(name=f"{name}-{i}")
    status = client.get("/healthz").status_code
    if status != 200:
        sys.exit(f"/healthz answered {status}")
"""


def _environment(database: Path) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_URL", "CELERY_"))
    }
    environment.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=f"sqlite:///{database}",
        DJANGO_ALLOWED_HOSTS="testserver,localhost",
    )
    return environment


def _migrate(environment):
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env=environment,
        check=True,
        timeout=300,
    )


def test_two_processes_writing_the_embedded_database_at_once(tmp_path):
    environment = _environment(tmp_path / "db.sqlite3")
    _migrate(environment)
    rounds = 150
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, name, str(rounds)],
            cwd=ROOT,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    outcomes = [writer.communicate(timeout=300) for writer in writers]
    for writer, (_, stderr) in zip(writers, outcomes, strict=True):
        assert writer.returncode == 0, stderr
        assert "Traceback" not in stderr

    count = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.contrib.auth.models import Group; "
            "print(Group.objects.count())",
        ],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert int(count.stdout) == 2 * rounds


@pytest.mark.django_db
def test_the_embedded_database_runs_in_wal_mode_with_a_busy_timeout():
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL in this environment")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] >= 10_000


def test_a_command_that_finds_the_database_locked_says_so_in_one_line(tmp_path):
    import sqlite3

    database = tmp_path / "db.sqlite3"
    environment = _environment(database)
    _migrate(environment)
    environment["EXPLAINSTUDY_SQLITE_TIMEOUT"] = "1"
    holder = sqlite3.connect(database)
    holder.execute("BEGIN EXCLUSIVE")  # another process in the middle of a long write
    try:
        result = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "createsuperuser",
                "--noinput",
                "--username",
                "x",
                "--email",
                "x@example.org",
            ],
            cwd=ROOT,
            env={**environment, "DJANGO_SUPERUSER_PASSWORD": "a-long-password-1"},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        holder.rollback()
        holder.close()
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "database is busy" in result.stderr
