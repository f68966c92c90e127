"""The engine's management commands: arguments in, clear errors out."""

import json

import pytest
import torch
from django.core.management import CommandError, call_command

from explain_engine import classifiers
from explain_engine.models import Classifier, ImageSet

pytestmark = pytest.mark.django_db


def test_make_synthetic_birds_then_import(tmp_path, capsys):
    out = tmp_path / "gulls"
    call_command(
        "make_synthetic_birds", str(out), "--per-class", "2", "--seed", "3", "--image-size", "64"
    )
    assert (out / "images.txt").read_text().count("\n") == 16
    call_command("import_cub", str(out), "--name", "gulls")
    assert ImageSet.objects.get(name="gulls").images.count() == 16
    assert "16 images, 8 classes" in capsys.readouterr().out


def test_make_synthetic_birds_refuses_to_overwrite(tiny_birds_dir):
    with pytest.raises(CommandError, match="images"):
        call_command("make_synthetic_birds", str(tiny_birds_dir), "--per-class", "2")


def test_import_cub_names_a_missing_folder(tmp_path):
    with pytest.raises(CommandError, match="images.txt"):
        call_command("import_cub", str(tmp_path / "nowhere"))


def test_import_cub_names_an_unknown_class(tiny_birds_dir):
    with pytest.raises(CommandError, match="Laughing Gull"):
        call_command("import_cub", str(tiny_birds_dir), "--classes", "Laughing Gull")
    assert not ImageSet.objects.filter(images__isnull=False).exists()


def test_train_classifier_records_accuracy_and_checkpoint(image_set, capsys):
    call_command(
        "train_classifier",
        "--imageset",
        image_set.name,
        "--name",
        "quick",
        "--architecture",
        "small_cnn",
        "--epochs",
        "1",
        "--input-size",
        "64",
        "--occlusion",
        "0.25",
    )
    classifier = Classifier.objects.get(name="quick")
    assert 0 <= classifier.test_accuracy <= 1
    assert classifier.training["epochs"] == 1 and len(classifier.training["history"]) == 1
    assert classifier.training["occlusion"] == 0.25
    assert classifier.checkpoint_sha256 == classifiers.sha256_file(classifier.checkpoint.path)
    output = capsys.readouterr().out
    assert "epoch 1/1" in output and "test accuracy" in output and "chance 12.5%" in output


def test_train_classifier_refuses_an_occlusion_share_outside_0_to_1(image_set):
    with pytest.raises(CommandError, match=r"occlusion must be a number in \[0, 1\], got 1.5"):
        call_command(
            "train_classifier", "--imageset", image_set.name, "--name", "x", "--occlusion", "1.5"
        )
    assert not Classifier.objects.filter(name="x").exists()


def test_train_classifier_unknown_image_set():
    with pytest.raises(CommandError, match="no image set named 'nope'"):
        call_command("train_classifier", "--imageset", "nope", "--name", "x")


def test_register_classifier_with_class_order(image_set, tmp_path):
    torch.manual_seed(1)
    path = tmp_path / "resnet.pt"
    torch.save(classifiers.build_model("resnet18", 8).state_dict(), path)
    order = list(reversed(image_set.classes.values_list("source_name", flat=True)))
    order_file = tmp_path / "order.json"
    order_file.write_text(json.dumps(order))
    call_command(
        "register_classifier",
        str(path),
        "--imageset",
        image_set.name,
        "--name",
        "resnet",
        "--architecture",
        "resnet18",
        "--class-order",
        str(order_file),
    )
    assert Classifier.objects.get(name="resnet").class_order == order


def test_register_classifier_wrong_class_count(image_set, tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save(classifiers.build_model("resnet18", 5).state_dict(), path)
    with pytest.raises(CommandError, match="fc"):
        call_command(
            "register_classifier",
            str(path),
            "--imageset",
            image_set.name,
            "--name",
            "bad",
            "--architecture",
            "resnet18",
        )
    assert not Classifier.objects.exists()
