"""Files nothing references are removed (by the command and beat's periodic task); a file a
row points at, or one a worker may be about to store, never is."""

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

from explain_engine import orphans
from explain_engine.models import Explanation, Image
from explain_engine.services.precompute import precompute_job_create
from explain_engine.tasks import orphan_files_remove_old, precompute_job_run

pytestmark = pytest.mark.django_db

DAY = 24 * 3600


def _file(media: Path, name: str, *, age_seconds: float) -> Path:
    path = media / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"left behind")
    then = time.time() - age_seconds
    os.utime(path, (then, then))
    return path


def _referenced_paths(media: Path) -> list[Path]:
    names = []
    for explanation in Explanation.objects.all():
        names += [explanation.overlay.name, explanation.raw_map.name]
    names += [image.file.name for image in Image.objects.all()]
    return [media / name for name in names if name]


@pytest.fixture
def stored(classifier, settings):
    images = list(classifier.image_set.images.filter(split="test")[:2])
    job = precompute_job_create(classifier=classifier, methods=[("gradcam", {})], images=images)
    precompute_job_run.delay(job.pk)
    media = Path(settings.MEDIA_ROOT)
    # Everything stored is old too: only the missing reference may make a file an orphan.
    for path in _referenced_paths(media):
        os.utime(path, (time.time() - 2 * DAY, time.time() - 2 * DAY))
    return media


def test_the_command_removes_old_orphans_and_keeps_every_referenced_or_young_file(stored):
    old_artifact = _file(stored, "explanations/0a1b2c.png", age_seconds=2 * DAY)
    old_image = _file(stored, "images/3d4e5f.jpg", age_seconds=2 * DAY)
    young = _file(stored, "explanations/6a7b8c.npy", age_seconds=60)
    referenced = _referenced_paths(stored)
    assert len(referenced) >= 6

    call_command("remove_orphan_files", "--dry-run", "--older-than-hours", "1")
    assert old_artifact.exists() and old_image.exists()

    call_command("remove_orphan_files", "--older-than-hours", "1")
    assert not old_artifact.exists() and not old_image.exists()
    assert young.exists()
    assert [path for path in referenced if not path.exists()] == []


def test_a_file_stored_after_it_was_listed_is_kept(stored, monkeypatch):
    explanation = Explanation.objects.first()
    listed = orphans.OrphanFile(explanation.overlay.name, 1)
    monkeypatch.setattr(orphans, "orphan_files", lambda **kwargs: [listed])
    assert orphans.orphan_files_remove(older_than=timedelta(0)) == []
    assert (stored / explanation.overlay.name).exists()


def test_beat_runs_the_clean_up_with_the_claim_lease_as_grace(stored, settings):
    schedule = django_settings.CELERY_BEAT_SCHEDULE
    assert "explain_engine.tasks.orphan_files_remove_old" in [e["task"] for e in schedule.values()]
    settings.EXPLAINSTUDY_CLAIM_LEASE_SECONDS = 3600
    orphan = _file(stored, "concept_models/9f8e7d.pt", age_seconds=2 * 3600)
    within_lease = _file(stored, "explanations/5c4b3a.png", age_seconds=1800)
    assert orphan_files_remove_old.delay().get() == 1
    assert not orphan.exists() and within_lease.exists()
    assert [path for path in _referenced_paths(stored) if not path.exists()] == []
