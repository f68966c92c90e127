"""Tests for explain_engine.classifiers (pure PyTorch, no Django)."""

import hashlib

import pytest
import torch
from PIL import Image
from torch import nn

from explain_engine.classifiers import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SUPPORTED_ARCHITECTURES,
    CheckpointMismatchError,
    Preprocessing,
    build_model,
    load_model,
    predict,
    sha256_file,
)
from explain_engine.training import save_checkpoint

PREP = Preprocessing(input_size=32, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def _seeded_model(architecture="small_cnn", num_classes=3, seed=0):
    torch.manual_seed(seed)
    return build_model(architecture, num_classes).eval()


@pytest.mark.parametrize("architecture", SUPPORTED_ARCHITECTURES)
def test_build_model_gives_one_logit_per_class(architecture):
    model = _seeded_model(architecture, num_classes=5)
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 5)


def test_supported_architectures_include_the_documented_ones():
    expected = {"resnet18", "resnet34", "resnet50", "vgg16", "mobilenet_v3_small", "small_cnn"}
    assert expected <= set(SUPPORTED_ARCHITECTURES)


def test_small_cnn_keeps_its_last_conv_block_as_features():
    model = build_model("small_cnn", 4)
    assert isinstance(model.features, nn.Sequential)
    feature_map = model.features(torch.randn(1, 3, 64, 64))
    assert feature_map.shape == (1, 128, 4, 4)
    assert any(isinstance(m, nn.Conv2d) for m in model.features[-1].modules())


def test_build_model_rejects_an_unknown_architecture_and_lists_the_supported_ones():
    with pytest.raises(ValueError, match="'alexnet9'") as error:
        build_model("alexnet9", 3)
    assert all(name in str(error.value) for name in SUPPORTED_ARCHITECTURES)


@pytest.mark.parametrize("num_classes", [0, -1, 2.0, True])
def test_build_model_rejects_a_bad_class_count(num_classes):
    with pytest.raises(ValueError, match="num_classes"):
        build_model("small_cnn", num_classes)


def test_to_tensor_resizes_converts_and_normalizes():
    image = Image.new("L", (50, 20), color=255)  # grey-scale, not square
    tensor = PREP.to_tensor(image)
    assert tensor.shape == (3, 32, 32)
    assert tensor.dtype == torch.float32
    expected = (1.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(tensor[:, 5, 7], expected)
    torch.testing.assert_close(tensor.amin(dim=(1, 2)), expected)


def test_to_tensor_keeps_colour_channels_in_rgb_order():
    prep = Preprocessing(input_size=8, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    tensor = prep.to_tensor(Image.new("RGB", (16, 16), color=(255, 0, 51)))
    torch.testing.assert_close(tensor[:, 0, 0], torch.tensor([1.0, 0.0, 0.2]))


def test_denormalize_inverts_to_tensor():
    pixels = torch.randint(0, 256, (24, 24, 3), dtype=torch.uint8)
    image = Image.fromarray(pixels.numpy())
    prep = Preprocessing(input_size=24, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    restored = prep.denormalize(prep.to_tensor(image))
    torch.testing.assert_close(restored, pixels.permute(2, 0, 1).float() / 255, atol=1e-5, rtol=0)


def test_denormalize_clamps_to_the_unit_range_and_accepts_batches():
    batch = torch.randn(2, 3, 4, 4) * 10
    restored = PREP.denormalize(batch)
    assert restored.shape == batch.shape
    assert restored.min() >= 0 and restored.max() <= 1
    inside = PREP.normalize(torch.rand(2, 3, 4, 4))
    torch.testing.assert_close(PREP.normalize(PREP.denormalize(inside)), inside)


def test_preprocessing_rejects_bad_values():
    with pytest.raises(ValueError, match="std"):
        Preprocessing(input_size=32, mean=IMAGENET_MEAN, std=(0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="input_size"):
        Preprocessing(input_size=0, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def test_checkpoint_round_trip_gives_identical_outputs_and_a_matching_sha256(tmp_path):
    model = _seeded_model("small_cnn", num_classes=3)
    path = tmp_path / "nested" / "model.pt"
    digest = save_checkpoint(model, path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert sha256_file(path) == digest
    assert list(tmp_path.joinpath("nested").iterdir()) == [path]  # no temporary file left

    loaded = load_model("small_cnn", 3, path)
    assert not loaded.training
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), model(images), rtol=0, atol=0)


def test_sha256_file_streams_large_files(tmp_path):
    path = tmp_path / "blob.bin"
    data = bytes(range(256)) * 40_000  # 10 MB, larger than any read chunk
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_load_model_names_the_checkpoint_and_the_class_count_mismatch(tmp_path):
    path = tmp_path / "three_classes.pt"
    save_checkpoint(_seeded_model("small_cnn", num_classes=3), path)
    with pytest.raises(CheckpointMismatchError) as error:
        load_model("small_cnn", 5, path)
    message = str(error.value)
    assert "three_classes.pt" in message
    assert "classifier.weight: checkpoint (3, 128), model (5, 128)" in message


def test_load_model_names_missing_and_unexpected_keys_for_the_wrong_architecture(tmp_path):
    path = tmp_path / "small.pt"
    save_checkpoint(_seeded_model("small_cnn", num_classes=3), path)
    with pytest.raises(CheckpointMismatchError, match="small.pt") as error:
        load_model("resnet18", 3, path)
    message = str(error.value)
    assert "missing keys: conv1.weight" in message
    assert "unexpected keys: features.0.0.weight" in message


def test_load_model_refuses_a_file_without_a_state_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(CheckpointMismatchError, match="list.pt.*does not hold a state_dict"):
        load_model("small_cnn", 3, path)


def test_predict_returns_probabilities_and_restores_training_flags():
    model = _seeded_model("small_cnn", num_classes=3).train()
    model.features[0].eval()  # a mixed state must come back as it was
    flags = {name: m.training for name, m in model.named_modules()}
    images = torch.randn(5, 3, 32, 32)
    before = images.clone()

    probabilities = predict(model, images, batch_size=2)

    assert {name: m.training for name, m in model.named_modules()} == flags
    assert probabilities.shape == (5, 3)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(5))
    torch.testing.assert_close(images, before, rtol=0, atol=0)
    assert not probabilities.requires_grad


def test_predict_uses_eval_mode_and_batched_equals_unbatched():
    model = _seeded_model("small_cnn", num_classes=3).train()
    images = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        expected = torch.softmax(model.eval()(images), dim=1)
    model.train()
    torch.testing.assert_close(predict(model, images, batch_size=2), expected)
    torch.testing.assert_close(predict(model, images, batch_size=5), expected)


class _Failing(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)

    def forward(self, x):
        raise RuntimeError("boom")


def test_predict_restores_flags_even_when_the_model_fails():
    model = _Failing().train()
    with pytest.raises(RuntimeError, match="boom"):
        predict(model, torch.randn(2, 3, 4, 4), batch_size=2)
    assert model.training and model.linear.training


@pytest.mark.parametrize("batch_size", [0, -3, 1.5])
def test_predict_rejects_a_bad_batch_size(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        predict(_seeded_model(), torch.randn(2, 3, 32, 32), batch_size=batch_size)
