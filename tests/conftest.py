"""Shared fixtures: a tiny synthetic image set on disk, its records, an untrained classifier.

Personas: `researcher_a` is staff (sees every study's researcher pages); `researcher_owner`
is not staff and sees the studies it owns; `researcher_b` is not staff and owns nothing.
`participant` fixtures are created through the real entry service, never by hand.
"""

import shutil
from pathlib import Path

import pytest
import torch

from config.celery_app import app as celery_app
from explain_engine import classifiers
from explain_engine.datasets.synthetic_birds import generate_synthetic_birds

TINY_PER_CLASS = 4
TINY_IMAGE_SIZE = 64
TINY_INPUT_SIZE = 64


@pytest.fixture(autouse=True)
def _isolated_media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _fresh_cache():
    # Rate-limit counters live in the cache; one test's entries must not count for the next.
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _fresh_study_snapshots():
    # SQLite reuses a rolled-back test's primary keys, so a kept snapshot of one test's
    # launched study could stand for another test's study with the same pk and design.
    from study.design.frozen import frozen_studies_forget

    frozen_studies_forget()


@pytest.fixture(autouse=True)
def _celery_in_process():
    # Tests run tasks in-process unless a test asks for the real broker (see test_worker).
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(scope="session")
def tiny_birds_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("birds") / "tiny-gulls"
    generate_synthetic_birds(root, per_class=TINY_PER_CLASS, seed=7, image_size=TINY_IMAGE_SIZE)
    return root


@pytest.fixture
def birds_copy(tiny_birds_dir, tmp_path) -> Path:
    """A private copy a test may damage."""
    return Path(shutil.copytree(tiny_birds_dir, tmp_path / "birds"))


@pytest.fixture(scope="session")
def untrained_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = classifiers.build_model("small_cnn", 8)
    path = tmp_path_factory.mktemp("checkpoints") / "small_cnn.pt"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture
def image_set(db, tiny_birds_dir):
    from explain_engine.services.images import image_set_import_cub

    return image_set_import_cub(root=tiny_birds_dir, name="tiny-gulls")


@pytest.fixture
def classifier(image_set, untrained_checkpoint):
    from explain_engine.services.classifiers import classifier_register

    return classifier_register(
        name="tiny-classifier",
        image_set=image_set,
        architecture="small_cnn",
        checkpoint_path=untrained_checkpoint,
        input_size=TINY_INPUT_SIZE,
    )


@pytest.fixture
def trained_classifier(image_set):
    """A classifier fitted to the tiny set (a few seconds on the CPU). An untrained one is
    equally unsure everywhere, so e.g. its SAG search finds no clear confidence gaps."""
    from explain_engine.services.classifiers import classifier_train

    return classifier_train(image_set=image_set, name="tiny-trained", epochs=30, input_size=64)


@pytest.fixture
def researcher_a(db, django_user_model):
    return django_user_model.objects.create_user(
        username="researcher_a", password="a-long-test-password", is_staff=True
    )


@pytest.fixture
def researcher_owner(db, django_user_model):
    """Not staff: sees the studies they own and nothing else."""
    return django_user_model.objects.create_user(
        username="researcher_owner", password="a-long-test-password"
    )


@pytest.fixture
def researcher_b(db, django_user_model):
    """Not staff, owns nothing: must not see anyone else's study."""
    return django_user_model.objects.create_user(
        username="researcher_b", password="a-long-test-password"
    )
