"""Files go through Django's storage API: the pipeline works unchanged on S3-compatible storage.

moto stands in for S3 at the HTTP level: boto3 and django-storages run for real.
"""

import os
import subprocess
import sys
from pathlib import Path

import boto3
import numpy as np
import pytest
from moto import mock_aws
from PIL import Image as PILImage

from explain_engine.models import Explanation
from explain_engine.services.concept_models import concept_model_fit
from explain_engine.services.precompute import precompute_job_create
from explain_engine.tasks import precompute_job_run

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "explainstudy-test"


@pytest.fixture
def s3_storage(settings, tmp_path):
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                "BACKEND": "storages.backends.s3.S3Storage",
                "OPTIONS": {
                    "bucket_name": BUCKET,
                    "region_name": "us-east-1",
                    "access_key": "testing",
                    "secret_key": "testing",
                    "default_acl": None,
                    "file_overwrite": False,
                },
            },
        }
        settings.EXPLAINSTUDY_CHECKPOINT_CACHE = tmp_path / "checkpoint-cache"
        yield boto3.client("s3", region_name="us-east-1")


@pytest.mark.django_db
def test_images_checkpoints_and_explanations_live_in_the_bucket(s3_storage, classifier, settings):
    images = list(classifier.image_set.images.filter(split="test"))
    job = precompute_job_create(classifier=classifier, methods=[("gradcam", {})], images=images)
    precompute_job_run.delay(job.pk)

    explanations = list(Explanation.objects.filter(status="done"))
    assert len(explanations) == len(images)
    keys = {item["Key"] for item in s3_storage.list_objects_v2(Bucket=BUCKET)["Contents"]}
    for explanation in explanations:
        assert {explanation.overlay.name, explanation.raw_map.name} <= keys
        with explanation.overlay.open("rb") as handle, PILImage.open(handle) as overlay:
            assert overlay.format == "PNG"
        with explanation.raw_map.open("rb") as handle:
            assert np.load(handle).shape == (64, 64)
    assert classifier.checkpoint.name in keys
    # The worker read the checkpoint from the bucket into its cache, checked by sha256.
    cached = settings.EXPLAINSTUDY_CHECKPOINT_CACHE / f"{classifier.checkpoint_sha256}.pt"
    assert cached.is_file()
    assert not Path(settings.MEDIA_ROOT).exists() or not any(Path(settings.MEDIA_ROOT).iterdir())


def test_setting_a_bucket_switches_the_default_storage_to_s3():
    def default_storage(**variables) -> str:
        env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        code = "from django.conf import settings; print(settings.STORAGES['default'])"
        return subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {code}"],
            env={**env, "DJANGO_SETTINGS_MODULE": "config.settings", **variables},
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    assert "FileSystemStorage" in default_storage()
    s3 = default_storage(
        AWS_STORAGE_BUCKET_NAME="study-media",
        AWS_S3_ENDPOINT_URL="http://minio:9000",
        AWS_S3_REGION_NAME="eu-west-1",
    )
    assert "storages.backends.s3.S3Storage" in s3
    assert "'bucket_name': 'study-media'" in s3 and "'endpoint_url': 'http://minio:9000'" in s3


@pytest.mark.django_db
def test_concept_models_are_fitted_stored_and_read_back_from_the_bucket(
    s3_storage, classifier, settings
):
    fast = {"k": 3, "epochs": 2, "pretrain_epochs": 1, "max_attempts": 1, "mode": "shared"}
    images = list(classifier.image_set.images.filter(split="test"))[:2]
    # two epochs fit a weak concept model: kept as `fit_xnn --accept-weak-fit` keeps one
    concept_model_fit(classifier=classifier, accept_weak_fit=True, **fast)
    job = precompute_job_create(classifier=classifier, methods=[("xnn", fast)], images=images)
    precompute_job_run.delay(job.pk)

    from explain_engine.models import ConceptModel

    concept_model = ConceptModel.objects.get()
    keys = {item["Key"] for item in s3_storage.list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert concept_model.file.name in keys
    assert Explanation.objects.filter(method="xnn", status="done").count() == len(images)
    cached = list(settings.EXPLAINSTUDY_CHECKPOINT_CACHE.glob("concept-model-*.pt"))
    assert len(cached) == 1
