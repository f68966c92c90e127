"""Settings come from the environment and fail closed in production; /healthz answers."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_check(**env):
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_URL", "CELERY_"))
    }
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "CRITICAL"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_to_start_without_a_secret_key():
    result = run_check(DJANGO_ENV="production", DJANGO_ALLOWED_HOSTS="example.org")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts():
    result = run_check(DJANGO_ENV="production", DJANGO_SECRET_KEY="x" * 50)
    assert result.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS must be set" in result.stderr


def test_production_starts_when_configured():
    result = run_check(
        DJANGO_ENV="production", DJANGO_SECRET_KEY="k" * 50, DJANGO_ALLOWED_HOSTS="example.org"
    )
    assert result.returncode == 0, result.stderr


def test_embedded_default_runs_tasks_in_process():
    from django.conf import settings

    if os.environ.get("CELERY_BROKER_URL"):
        pytest.skip("a broker is configured in this environment")
    assert settings.CELERY_TASK_ALWAYS_EAGER is True


@pytest.mark.django_db
def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("path", "wording"),
    [
        ("/researcher/", "What you just did was not saved"),
        ("/admin/study/study/", "What you just did was not saved"),
        ("/s/demo/p/abc/", "Your earlier answers are saved"),
    ],
)
def test_a_lost_database_is_worded_for_whoever_asked(rf, path, wording):
    from django.db import OperationalError

    from config.security import DatabaseUnavailableMiddleware

    middleware = DatabaseUnavailableMiddleware(lambda request: None)
    response = middleware.process_exception(rf.get(path), OperationalError("database is locked"))
    assert response.status_code == 503
    assert wording in response.content.decode()
