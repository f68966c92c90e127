"""Tests for explain_engine.training (pure PyTorch, no Django)."""

import pytest
import torch
from PIL import Image, ImageDraw

from explain_engine import training
from explain_engine.classifiers import IMAGENET_MEAN, IMAGENET_STD, load_model, predict
from explain_engine.methods.baselines import blur_baseline
from explain_engine.training import (
    DEMO_TRAINING,
    OCCLUSION_GRID,
    _augment,
    occlude,
    occlusion_plan,
    reveal_mark_sets,
    save_checkpoint,
    train_classifier,
)

SIZE = 32
COLOURS = [(220, 30, 30), (30, 60, 220)]  # class 0 red, class 1 blue


def _write_images(directory, per_class, seed):
    """Red and blue discs on a varied grey background: trivially separable by colour."""
    generator = torch.Generator().manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    items = []
    for label, colour in enumerate(COLOURS):
        for k in range(per_class):
            grey = int(torch.randint(60, 200, (), generator=generator))
            x, y = torch.randint(0, 20, (2,), generator=generator).tolist()
            image = Image.new("RGB", (48, 48), (grey, grey, grey))
            ImageDraw.Draw(image).ellipse((x, y, x + 26, y + 26), fill=colour)
            path = directory / f"{label}_{k}.png"
            image.save(path)
            items.append((path, label))
    return items


@pytest.fixture(scope="module")
def red_blue(tmp_path_factory):
    root = tmp_path_factory.mktemp("red_blue")
    return _write_images(root / "train", 8, seed=1), _write_images(root / "test", 4, seed=2)


def _train(red_blue, **overrides):
    train, test = red_blue
    settings = dict(
        architecture="small_cnn",
        num_classes=2,
        input_size=SIZE,
        epochs=2,
        seed=0,
        batch_size=8,
        learning_rate=3e-3,
        device="cpu",
    )
    return train_classifier(train, test, **{**settings, **overrides})


def test_training_is_deterministic_for_a_seed(red_blue):
    torch.manual_seed(100)  # the caller's global RNG state must not matter
    first = _train(red_blue, seed=3).model.state_dict()
    torch.manual_seed(200)
    second = _train(red_blue, seed=3).model.state_dict()
    other = _train(red_blue, seed=4).model.state_dict()
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=0, atol=0, msg=key)
    assert not torch.equal(first["classifier.weight"], other["classifier.weight"])


def test_training_leaves_the_callers_global_rng_alone(red_blue):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _train(red_blue, epochs=1)
    torch.testing.assert_close(torch.rand(3), expected)


def test_training_separates_red_from_blue(red_blue):
    result = _train(red_blue, epochs=4)
    assert result.train_accuracy == 1.0
    assert result.test_accuracy == 1.0


def test_test_accuracy_is_measured_on_the_test_items(red_blue):
    train, _test = red_blue
    mislabelled = [(path, 1 - label) for path, label in train]
    result = _train((train, mislabelled), epochs=4)
    assert result.train_accuracy == 1.0
    assert result.test_accuracy == 0.0


def test_training_returns_an_eval_mode_cpu_model_and_its_preprocessing(red_blue):
    result = _train(red_blue, epochs=1)
    assert not any(module.training for module in result.model.modules())
    assert {p.device.type for p in result.model.parameters()} == {"cpu"}
    assert result.preprocessing.input_size == SIZE
    assert result.preprocessing.mean == IMAGENET_MEAN
    assert result.preprocessing.std == IMAGENET_STD
    assert result.architecture == "small_cnn"


def test_reported_accuracies_match_predictions_on_the_cached_images(red_blue):
    train, test = red_blue
    result = _train(red_blue, epochs=1)
    images = torch.stack([result.preprocessing.to_tensor(Image.open(p)) for p, _ in test])
    labels = torch.tensor([label for _, label in test])
    predicted = predict(result.model, images, batch_size=4).argmax(dim=1)
    assert result.test_accuracy == pytest.approx((predicted == labels).float().mean().item())


def test_progress_is_called_once_per_epoch_with_the_history_entry(red_blue):
    calls = []
    result = _train(red_blue, epochs=3, progress=calls.append)
    assert [call["epoch"] for call in calls] == [1, 2, 3]
    assert all(call["epochs"] == 3 for call in calls)
    assert len(result.history) == 3
    assert [{k: v for k, v in call.items() if k != "epochs"} for call in calls] == result.history
    assert set(result.history[0]) == {"epoch", "loss", "accuracy", "learning_rate", "seconds"}
    assert result.history[0]["seconds"] > 0


def test_a_trained_model_survives_a_checkpoint_round_trip(red_blue, tmp_path):
    result = _train(red_blue, epochs=1)
    save_checkpoint(result.model, tmp_path / "model.pt")
    loaded = load_model("small_cnn", 2, tmp_path / "model.pt")
    images = torch.randn(3, 3, SIZE, SIZE)
    torch.testing.assert_close(
        predict(loaded, images, batch_size=3), predict(result.model, images, batch_size=3)
    )


def test_a_last_batch_of_one_image_is_folded_in(red_blue):
    # At 16 px small_cnn's last feature map is 1x1, where BatchNorm cannot train on one image.
    train, test = red_blue
    result = train_classifier(
        train[:9],
        test,
        architecture="small_cnn",
        num_classes=2,
        input_size=16,
        epochs=1,
        seed=0,
        batch_size=4,
        device="cpu",
    )
    assert len(result.history) == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(epochs=0), "epochs"),
        (dict(batch_size=0), "batch_size"),
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(occlusion=1.5), "occlusion"),
        (dict(occlusion=-0.1), "occlusion"),
        (dict(mark_reveal=1.5), "mark_reveal"),
        (dict(mark_reveal=0.5), "mark_reveal needs mark_keeps"),
        (dict(mark_keeps=torch.ones(3, 2, 7, 7)), r"16 train images, got shape \(3, 2, 7, 7\)"),
        (dict(num_classes=1), r"train labels must be in \[0, 1\)"),
        (dict(architecture="nope"), "Unknown architecture 'nope'"),
    ],
)
def test_bad_arguments_are_refused(red_blue, overrides, message):
    with pytest.raises(ValueError, match=message):
        _train(red_blue, **overrides)


def test_empty_splits_are_refused(red_blue):
    train, test = red_blue
    settings = dict(architecture="small_cnn", num_classes=2, input_size=SIZE, epochs=1, seed=0)
    with pytest.raises(ValueError, match="test_items is empty"):
        train_classifier(train, [], **settings)
    with pytest.raises(ValueError, match="at least 2 training images"):
        train_classifier(train[:1], test, **settings)


def test_augmentation_keeps_shape_and_is_reproducible():
    images = torch.rand(6, 3, 16, 16)
    first = _augment(images, torch.Generator().manual_seed(0))
    second = _augment(images, torch.Generator().manual_seed(0))
    assert first.shape == images.shape
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert not torch.allclose(first, images)
    # Values are interpolated from the image, never invented.
    assert first.min() >= images.min() and first.max() <= images.max()


def test_augmentation_mirrors_about_half_the_images(monkeypatch):
    monkeypatch.setattr(training, "CROP_SCALE", (1.0, 1.0))
    monkeypatch.setattr(training, "CROP_RATIO", (1.0, 1.0))
    images = torch.rand(32, 3, 8, 8)
    augmented = _augment(images, torch.Generator().manual_seed(0))
    same = [torch.allclose(a, i, atol=1e-5) for a, i in zip(augmented, images, strict=True)]
    mirrored = [
        torch.allclose(a, i.flip(-1), atol=1e-5) for a, i in zip(augmented, images, strict=True)
    ]
    assert all(s or m for s, m in zip(same, mirrored, strict=True))
    assert 8 <= sum(mirrored) <= 24


def test_demo_training_names_every_setting_train_classifier_needs():
    assert set(DEMO_TRAINING) == {
        "architecture",
        "input_size",
        "epochs",
        "batch_size",
        "learning_rate",
        "occlusion",
        "mark_reveal",
    }
    assert DEMO_TRAINING["occlusion"] == training.DEFAULT_OCCLUSION > 0
    assert DEMO_TRAINING["mark_reveal"] == training.DEMO_MARK_REVEAL > 0


BLACK = (0.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)


def test_occlusion_hides_exactly_the_planned_cells_with_black_or_blur():
    # 25 px and a 7 x 7 grid: cell centres fall on every 4th pixel, where the bilinear
    # (align_corners) upsampled mask is exactly the cell's value.
    n, size = 64, 25
    images = torch.randn(n, 3, size, size)
    plan = occlusion_plan(n, torch.Generator().manual_seed(0), probability=0.5)
    out = occlude(images, plan, BLACK)
    keep = plan.keep[:, 0]
    assert keep.shape == (n, OCCLUSION_GRID, OCCLUSION_GRID)
    centres = torch.arange(0, size, 4)
    at_centres = out[:, :, centres][:, :, :, centres]
    image_centres = images[:, :, centres][:, :, :, centres]
    blur_centres = blur_baseline(images)[:, :, centres][:, :, :, centres]
    black = BLACK.view(1, 3, 1, 1).expand_as(image_centres)
    expected = torch.where(
        keep[:, None] == 1,
        image_centres,
        torch.where(plan.blurred.view(n, 1, 1, 1), blur_centres, black),
    )
    torch.testing.assert_close(at_centres, expected)

    occluded = (keep == 0).flatten(1).any(dim=1)
    untouched = ~occluded
    torch.testing.assert_close(out[untouched], images[untouched], rtol=0, atol=0)
    assert not plan.blurred[untouched].any()
    # About half the images are occluded, black and blurred alike, each hiding some cells
    # but rarely all.
    assert 20 <= int(occluded.sum()) <= 44
    assert 5 <= int(plan.blurred.sum()) <= int(occluded.sum()) - 5
    hidden_share = (keep[occluded] == 0).flatten(1).float().mean(dim=1)
    assert float(hidden_share.min()) > 0.05 and float(hidden_share.max()) < 1.0


def test_occlusion_probability_zero_leaves_images_whole():
    images = torch.randn(16, 3, 25, 25)
    plan = occlusion_plan(16, torch.Generator().manual_seed(0), probability=0.0)
    assert bool((plan.keep == 1).all()) and not plan.blurred.any()
    torch.testing.assert_close(occlude(images, plan, BLACK), images, rtol=0, atol=0)


def test_training_occludes_with_the_given_probability(red_blue, monkeypatch):
    seen = []
    real = training.occlusion_plan

    def recording(n, generator, *, probability):
        seen.append(probability)
        return real(n, generator, probability=probability)

    monkeypatch.setattr(training, "occlusion_plan", recording)
    _train(red_blue, epochs=1, occlusion=0.7)
    assert seen and set(seen) == {0.7}
    seen.clear()
    _train(red_blue, epochs=1)
    assert seen and set(seen) == {training.DEFAULT_OCCLUSION}


def _two_set_keeps(n: int) -> torch.Tensor:
    """Set 0 keeps the top-left cell, set 1 the bottom-right one, on every image."""
    keeps = torch.zeros(n, 2, OCCLUSION_GRID, OCCLUSION_GRID)
    keeps[:, 0, 0, 0] = 1.0
    keeps[:, 1, -1, -1] = 1.0
    return keeps


def test_a_mark_reveal_shows_one_sets_cells_on_black_and_leaves_the_rest_whole():
    # 25 px and a 7 x 7 grid: cell centres fall on every 4th pixel (see above).
    n, size = 64, 25
    images = torch.randn(n, 3, size, size)
    out, revealed = reveal_mark_sets(
        images, _two_set_keeps(n), BLACK, torch.Generator().manual_seed(0), probability=0.5
    )
    assert 20 <= int(revealed.sum()) <= 44
    torch.testing.assert_close(out[~revealed], images[~revealed], rtol=0, atol=0)
    black = BLACK.view(3, 1, 1)
    shown_sets = []
    for image, original in zip(out[revealed], images[revealed], strict=True):
        centres = image[:, ::4, ::4]  # (3, 7, 7): each cell's value
        shown = [(0, 0), (6, 6)]
        kept = [
            cell
            for cell in shown
            if torch.allclose(centres[:, cell[0], cell[1]], original[:, cell[0] * 4, cell[1] * 4])
        ]
        assert len(kept) == 1  # exactly one set's cell shows the image
        shown_sets.append(kept[0])
        hidden = torch.ones(7, 7, dtype=torch.bool)
        hidden[kept[0]] = False
        torch.testing.assert_close(
            centres[:, hidden], black.expand(3, 7, 7)[:, hidden], rtol=0, atol=1e-6
        )
    # both sets are drawn
    assert {(0, 0), (6, 6)} == set(shown_sets)


def test_mark_reveal_probabilities_zero_and_one():
    images = torch.randn(16, 3, 25, 25)
    keeps = _two_set_keeps(16)
    out, revealed = reveal_mark_sets(
        images, keeps, BLACK, torch.Generator().manual_seed(0), probability=0
    )
    assert not revealed.any()
    torch.testing.assert_close(out, images, rtol=0, atol=0)
    _, revealed = reveal_mark_sets(
        images, keeps, BLACK, torch.Generator().manual_seed(0), probability=1
    )
    assert revealed.all()


def test_revealed_training_images_are_not_occluded_as_well(red_blue, monkeypatch):
    """A revealed image shows its set's cells; the random occlusion must not hide them."""
    plans = []
    real = training.occlude

    def recording(images, plan, black):
        plans.append(plan)
        return real(images, plan, black)

    reveals = []
    real_reveal = training.reveal_mark_sets

    def recording_reveal(images, keeps, black, generator, *, probability):
        out, revealed = real_reveal(images, keeps, black, generator, probability=probability)
        reveals.append(revealed.clone())
        return out, revealed

    monkeypatch.setattr(training, "occlude", recording)
    monkeypatch.setattr(training, "reveal_mark_sets", recording_reveal)
    _train(red_blue, epochs=1, occlusion=1.0, mark_reveal=0.5, mark_keeps=_two_set_keeps(16))
    assert reveals and len(reveals) == len(plans)
    for revealed, plan in zip(reveals, plans, strict=True):
        assert revealed.any() and (~revealed).any()
        assert bool((plan.keep[revealed] == 1).all())
        assert not plan.blurred[revealed].any()
        assert bool((plan.keep[~revealed] == 0).any())
