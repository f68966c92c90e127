"""The synthetic-birds generator and the CUB-layout reader (pure Python, no database)."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from explain_engine.datasets.cub import (
    CUB_DISPLAY_NAMES,
    CubFormatError,
    display_name,
    read_cub,
)
from explain_engine.datasets.synthetic_birds import (
    EYE_RING_COLOURS,
    LEG_COLOURS,
    MARK_PARTS,
    MARK_SETS,
    MARKS,
    PART_NAMES,
    SPECIES,
    SPECIES_TABLE,
    generate_synthetic_birds,
    minimal_sufficient_mark_sets,
    read_ground_truth,
    species_from_marks,
    sufficient_mark_sets,
)

pytestmark = []

PER_CLASS = 5
SPECIES_BY_FOLDER = {species.folder_name: species for species in SPECIES_TABLE}


@pytest.fixture(scope="module")
def birds_dir(tmp_path_factory) -> Path:
    """A small generated set, shared by the tests that only read it."""
    out_dir = tmp_path_factory.mktemp("birds")
    generate_synthetic_birds(out_dir, per_class=PER_CLASS, seed=3)
    return out_dir


@pytest.fixture
def copy_of_birds(birds_dir, tmp_path) -> Path:
    """A private copy for the tests that damage it."""
    return Path(shutil.copytree(birds_dir, tmp_path / "copy"))


def read_rows(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()]


def all_file_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


# --- generator ----------------------------------------------------------------------------


def test_layout_files_exist_and_agree(birds_dir):
    image_rows = read_rows(birds_dir / "images.txt")
    class_rows = read_rows(birds_dir / "classes.txt")
    label_rows = read_rows(birds_dir / "image_class_labels.txt")
    split_rows = read_rows(birds_dir / "train_test_split.txt")
    bbox_rows = read_rows(birds_dir / "bounding_boxes.txt")
    part_rows = read_rows(birds_dir / "parts" / "parts.txt")
    part_loc_rows = read_rows(birds_dir / "parts" / "part_locs.txt")

    image_count = 8 * PER_CLASS
    expected_ids = [str(i) for i in range(1, image_count + 1)]
    assert [row[0] for row in image_rows] == expected_ids
    assert [row[0] for row in label_rows] == expected_ids
    assert [row[0] for row in split_rows] == expected_ids
    assert [row[0] for row in bbox_rows] == expected_ids
    assert [" ".join(row) for row in part_rows] == [
        f"{i} {name}" for i, name in enumerate(PART_NAMES, start=1)
    ]
    assert len(PART_NAMES) == 15
    assert [(row[0], row[1]) for row in part_loc_rows] == [
        (image_id, str(part_id)) for image_id in expected_ids for part_id in range(1, 16)
    ]

    folder_by_class_id = {row[0]: row[1] for row in class_rows}
    assert [row[1].split(".", 1)[1] for row in class_rows] == list(SPECIES)
    for (_, relative_path), (_, class_id) in zip(image_rows, label_rows, strict=True):
        folder, file_name = relative_path.split("/")
        assert folder == folder_by_class_id[class_id]
        assert file_name.startswith(folder.split(".", 1)[1] + "_")
        with Image.open(birds_dir / "images" / relative_path) as image:
            assert image.format == "JPEG"
            assert image.size == (224, 224)
            assert "exif" not in image.info


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path):
    generate_synthetic_birds(tmp_path / "a", per_class=2, seed=7, image_size=96)
    generate_synthetic_birds(tmp_path / "b", per_class=2, seed=7, image_size=96)
    generate_synthetic_birds(tmp_path / "c", per_class=2, seed=8, image_size=96)
    first, again, other = (all_file_bytes(tmp_path / name) for name in "abc")

    assert len(first) == 8 * 2 + 8
    assert first == again
    assert first.keys() == other.keys()
    jpg_names = [name for name in first if name.endswith(".jpg")]
    assert all(first[name] != other[name] for name in jpg_names)
    assert first["bounding_boxes.txt"] != other["bounding_boxes.txt"]
    assert first["ground_truth.json"] != other["ground_truth.json"]


def test_more_images_per_class_keeps_the_first_ones(tmp_path):
    generate_synthetic_birds(tmp_path / "small", per_class=2, seed=1, image_size=96)
    generate_synthetic_birds(tmp_path / "large", per_class=3, seed=1, image_size=96)
    small = tmp_path / "small" / "images" / "062.Herring_Gull" / "Herring_Gull_0002.jpg"
    large = tmp_path / "large" / "images" / "062.Herring_Gull" / "Herring_Gull_0002.jpg"
    assert small.read_bytes() == large.read_bytes()


def test_distant_photos_are_test_only_come_last_and_change_no_other_file(tmp_path):
    generate_synthetic_birds(tmp_path / "plain", per_class=3, seed=1, image_size=96)
    generate_synthetic_birds(
        tmp_path / "hard", per_class=3, seed=1, image_size=96, distant_per_class=2
    )
    plain, hard = all_file_bytes(tmp_path / "plain"), all_file_bytes(tmp_path / "hard")
    distant = sorted(name for name in hard if "_distant_" in name)
    assert len(distant) == 8 * 2
    assert all(hard[name] == plain[name] for name in plain if name.endswith(".jpg"))
    # the first 24 rows (the usual photos) are unchanged, the 16 distant ones follow
    for listing in ("images.txt", "train_test_split.txt", "image_class_labels.txt"):
        plain_rows = read_rows(tmp_path / "plain" / listing)
        hard_rows = read_rows(tmp_path / "hard" / listing)
        assert hard_rows[: len(plain_rows)] == plain_rows
        assert len(hard_rows) == len(plain_rows) + 16
    split = dict(read_rows(tmp_path / "hard" / "train_test_split.txt"))
    names = dict(read_rows(tmp_path / "hard" / "images.txt"))
    assert {split[i] for i, name in names.items() if "_distant_" in name} == {"0"}
    # a distant bird is drawn smaller than the same species' usual birds
    boxes = {row[0]: float(row[3]) for row in read_rows(tmp_path / "hard" / "bounding_boxes.txt")}
    usual = [boxes[i] for i, name in names.items() if "_distant_" not in name]
    far = [boxes[i] for i, name in names.items() if "_distant_" in name]
    assert max(far) < min(usual)


def test_every_class_has_per_class_images_and_the_split_is_stratified(tmp_path):
    generate_synthetic_birds(tmp_path, per_class=10, seed=0, image_size=64, test_fraction=0.3)
    class_by_image = dict(read_rows(tmp_path / "image_class_labels.txt"))
    test_count_by_class: dict[str, int] = {}
    image_count_by_class: dict[str, int] = {}
    for image_id, is_train in read_rows(tmp_path / "train_test_split.txt"):
        class_id = class_by_image[image_id]
        image_count_by_class[class_id] = image_count_by_class.get(class_id, 0) + 1
        test_count_by_class[class_id] = test_count_by_class.get(class_id, 0) + (is_train == "0")

    assert len(image_count_by_class) == 8
    assert set(image_count_by_class.values()) == {10}
    assert set(test_count_by_class.values()) == {3}
    for species in SPECIES_TABLE:
        folder = tmp_path / "images" / species.folder_name
        assert len(list(folder.glob("*.jpg"))) == 10


def test_smallest_split_keeps_a_train_and_a_test_image_per_class(tmp_path):
    generate_synthetic_birds(tmp_path, per_class=2, seed=0, image_size=64, test_fraction=0.01)
    flags = [row[1] for row in read_rows(tmp_path / "train_test_split.txt")]
    # Images are listed class by class, two per class.
    assert [sorted(flags[i : i + 2]) for i in range(0, 16, 2)] == [["0", "1"]] * 8


def test_part_locations_lie_inside_the_bbox_and_the_image(birds_dir):
    bboxes = {
        row[0]: [float(v) for v in row[1:]] for row in read_rows(birds_dir / "bounding_boxes.txt")
    }
    visible_count = 0
    for image_id, _, x_text, y_text, visible in read_rows(birds_dir / "parts" / "part_locs.txt"):
        x, y = float(x_text), float(y_text)
        if visible == "0":
            assert (x, y) == (0.0, 0.0)
            continue
        visible_count += 1
        box_x, box_y, box_w, box_h = bboxes[image_id]
        # Coordinates are written with one decimal, hence the 0.1 slack.
        assert box_x - 0.1 <= x <= box_x + box_w + 0.1
        assert box_y - 0.1 <= y <= box_y + box_h + 0.1
    assert visible_count >= 13 * 8 * PER_CLASS
    for box_x, box_y, box_w, box_h in bboxes.values():
        assert box_x >= 0 and box_x + box_w <= 224
        assert box_y >= 0 and box_y + box_h <= 224
        assert box_w > 50 and box_h > 40


def test_only_the_near_eye_and_wing_are_visible(birds_dir):
    dataset = read_cub(birds_dir)
    sides_shown = set()
    for image in dataset.images:
        assert ("left eye" in image.parts) != ("right eye" in image.parts)
        assert ("left wing" in image.parts) == ("left eye" in image.parts)
        assert ("right wing" in image.parts) == ("right eye" in image.parts)
        assert "left leg" in image.parts and "right leg" in image.parts
        sides_shown.add("left eye" in image.parts)
    assert sides_shown == {True, False}  # both facing directions occur


def pixels_of(dataset, image) -> np.ndarray:
    with Image.open(dataset.image_path(image)) as opened:
        return np.asarray(opened.convert("RGB"), dtype=np.float64)


def nearest_colour(colour: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    return min(palette, key=lambda name: float(np.sum((colour - np.array(palette[name])) ** 2)))


def box_mask(shape: tuple[int, ...], box: tuple[float, ...], pad: float = 0.0) -> np.ndarray:
    x, y, w, h = box
    rows, columns = np.mgrid[: shape[0], : shape[1]]
    return (
        (columns >= x - pad) & (columns <= x + w + pad) & (rows >= y - pad) & (rows <= y + h + pad)
    )


def test_leg_colour_at_the_left_leg_follows_the_species(birds_dir):
    dataset = read_cub(birds_dir)
    seen = set()
    for image in dataset.images:
        x, y = (round(v) for v in image.parts["left leg"])
        colour = pixels_of(dataset, image)[y - 1 : y + 2, x - 1 : x + 2].mean(axis=(0, 1))
        # The far leg is drawn a shade darker; both shades must be nearest the species' colour.
        palette = {
            **{name: rgb for name, rgb in LEG_COLOURS.items()},
            **{
                f"{name} far": tuple(int(c * 0.88) for c in rgb)
                for name, rgb in LEG_COLOURS.items()
            },
        }
        nearest = nearest_colour(colour, palette).removesuffix(" far")
        assert nearest == SPECIES_BY_FOLDER[image.class_name].legs, (image.relative_path, colour)
        seen.add(nearest)
    assert seen == set(LEG_COLOURS)


def test_eye_ring_colour_follows_the_species(birds_dir):
    dataset = read_cub(birds_dir)
    truth = read_ground_truth(birds_dir)
    seen = set()
    for image in dataset.images:
        pixels = pixels_of(dataset, image)
        ring = box_mask(pixels.shape, truth.mark_boxes[image.image_id]["eye ring"])
        # The ring's pixels: the most saturated ones in its box (the pupil is dark, the head white).
        inside = pixels[ring]
        saturation = inside.max(axis=1) - inside.min(axis=1)
        colour = inside[saturation >= np.percentile(saturation, 75)].mean(axis=0)
        nearest = nearest_colour(colour, EYE_RING_COLOURS)
        assert nearest == SPECIES_BY_FOLDER[image.class_name].eye_ring, (
            image.relative_path,
            colour,
        )
        seen.add(nearest)
    assert seen == set(EYE_RING_COLOURS)


def test_bill_marks_follow_the_species(birds_dir):
    dataset = read_cub(birds_dir)
    truth = read_ground_truth(birds_dir)
    red_counts: dict[bool, list[int]] = {True: [], False: []}
    black_counts: dict[bool, list[int]] = {True: [], False: []}
    for image in dataset.images:
        pixels = pixels_of(dataset, image)
        boxes = truth.mark_boxes[image.image_id]
        bill = box_mask(pixels.shape, boxes["bill"]) & ~box_mask(
            pixels.shape, boxes["eye ring"], pad=1.0
        )
        red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
        strongly_red = bill & (red > 150) & (green < 100) & (blue < 100)
        near_black = bill & (pixels.max(axis=2) < 90)
        marks = SPECIES_BY_FOLDER[image.class_name].bill
        red_counts["red spot" in marks].append(int(strongly_red.sum()))
        black_counts["black ring" in marks].append(int(near_black.sum()))
    assert min(red_counts[True]) >= 5
    assert max(red_counts[False]) == 0
    assert min(black_counts[True]) >= 4
    assert max(black_counts[False]) == 0


def test_black_wing_tips_darken_the_wing_tip_and_pale_ones_do_not(birds_dir):
    dataset = read_cub(birds_dir)
    truth = read_ground_truth(birds_dir)
    dark_pixels_by_tip: dict[str, list[int]] = {"black": [], "pale grey": []}
    for image in dataset.images:
        pixels = pixels_of(dataset, image)
        tip = box_mask(pixels.shape, truth.mark_boxes[image.image_id]["wing tip"])
        dark_count = int((tip & (pixels.max(axis=2) < 60)).sum())
        dark_pixels_by_tip[SPECIES_BY_FOLDER[image.class_name].wing_tip].append(dark_count)
    assert min(dark_pixels_by_tip["black"]) > 80
    assert max(dark_pixels_by_tip["pale grey"]) < 10


def test_each_mark_set_alone_determines_the_species():
    assert len(SPECIES_TABLE) == 8 == len(SPECIES)
    assert tuple(s.name for s in SPECIES_TABLE) == SPECIES
    assert set(MARK_SETS[0]).isdisjoint(MARK_SETS[1])
    assert sorted(name for names in MARK_SETS for name in names) == sorted(MARKS)
    for species in SPECIES_TABLE:
        for names in MARK_SETS:
            assert species_from_marks({name: species.marks[name] for name in names}) == species


def test_no_mark_and_no_pair_across_the_sets_determines_the_species():
    # Some species share every single mark, and every pair with one mark from each set.
    for first in MARK_SETS[0]:
        assert species_from_marks({first: SPECIES_TABLE[0].marks[first]}) is None
        for second in MARK_SETS[1]:
            values = {(s.marks[first], s.marks[second]) for s in SPECIES_TABLE}
            assert len(values) < len(SPECIES_TABLE), (first, second)
    assert minimal_sufficient_mark_sets() == list(MARK_SETS)


def test_sufficient_sets_per_species_are_minimal_and_identify_it():
    cross = 0
    for species in SPECIES_TABLE:
        sets = sufficient_mark_sets(species)
        assert set(MARK_SETS) <= set(sets)
        cross += len(sets) - len(MARK_SETS)
        for names in sets:
            assert species_from_marks({n: species.marks[n] for n in names}) == species
            for name in names:  # no mark can be dropped
                smaller = {n: species.marks[n] for n in names if n != name}
                assert species_from_marks(smaller) != species
    # A value pair across the sets that no other species shares identifies some species.
    assert cross > 0


def test_ground_truth_file_records_the_marks_sets_and_boxes(birds_dir):
    dataset = read_cub(birds_dir)
    truth = read_ground_truth(birds_dir)
    assert truth.image_size == 224
    assert truth.minimal_sufficient_sets == list(MARK_SETS)
    assert truth.sufficient_sets_by_species == {
        s.folder_name: sufficient_mark_sets(s) for s in SPECIES_TABLE
    }
    assert truth.species == {s.folder_name: s.marks for s in SPECIES_TABLE}
    assert {name: tuple(mark["cub_parts"]) for name, mark in truth.marks.items()} == MARK_PARTS
    assert sorted(truth.mark_boxes) == [image.image_id for image in dataset.images]
    for image in dataset.images:
        boxes = truth.mark_boxes[image.image_id]
        assert sorted(boxes) == sorted(MARKS)
        for x, y, w, h in boxes.values():
            assert x >= 0 and x + w <= 224 and y >= 0 and y + h <= 224
            # Small marks: none is a quarter of the image on a side.
            assert 0 < w < 56 and 0 < h < 56
        # Each mark's box holds the CUB parts it lies on (the wing tip: none, it is the end
        # of the wing whose part point is mid-wing).
        for name in ("bill", "legs", "eye ring"):
            x, y, w, h = boxes[name]
            points = [image.parts[part] for part in MARK_PARTS[name] if part in image.parts]
            assert points
            for px, py in points:
                assert x - 0.1 <= px <= x + w + 0.1 and y - 0.1 <= py <= y + h + 0.1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"per_class": 1, "seed": 0}, "per_class"),
        ({"per_class": 4, "seed": 0, "image_size": 63}, "image_size"),
        ({"per_class": 4, "seed": 0, "test_fraction": 0.0}, "test_fraction"),
        ({"per_class": 4, "seed": 0, "test_fraction": 1.0}, "test_fraction"),
        ({"per_class": 4, "seed": -1}, "seed"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, arguments, message):
    with pytest.raises(ValueError, match=message):
        generate_synthetic_birds(tmp_path, **arguments)
    assert not (tmp_path / "images").exists()


def test_refuses_to_overwrite_an_existing_data_set(tmp_path):
    generate_synthetic_birds(tmp_path, per_class=2, seed=0, image_size=64)
    before = all_file_bytes(tmp_path)
    with pytest.raises(ValueError, match="refusing to overwrite"):
        generate_synthetic_birds(tmp_path, per_class=2, seed=1, image_size=64)
    assert all_file_bytes(tmp_path) == before


def test_refuses_a_non_empty_images_folder(tmp_path):
    (tmp_path / "images" / "001.Something").mkdir(parents=True)
    with pytest.raises(ValueError, match="images"):
        generate_synthetic_birds(tmp_path, per_class=2, seed=0, image_size=64)
    assert not (tmp_path / "images.txt").exists()


def test_refuses_a_folder_with_cub_metadata_files(tmp_path):
    (tmp_path / "images.txt").write_text("1 001.Some_Bird/Some_Bird_0001.jpg\n")
    with pytest.raises(ValueError, match="images.txt"):
        generate_synthetic_birds(tmp_path, per_class=2, seed=0, image_size=64)
    assert (tmp_path / "images.txt").read_text() == "1 001.Some_Bird/Some_Bird_0001.jpg\n"


def test_accepts_an_empty_images_folder(tmp_path):
    (tmp_path / "images").mkdir()
    generate_synthetic_birds(tmp_path, per_class=2, seed=0, image_size=64)
    assert (tmp_path / "images.txt").exists()


# --- reader -------------------------------------------------------------------------------


def test_read_cub_round_trip(birds_dir):
    dataset = read_cub(birds_dir)

    assert dataset.root == birds_dir
    assert dataset.class_names == [species.folder_name for species in SPECIES_TABLE]
    assert [image.image_id for image in dataset.images] == list(range(1, 8 * PER_CLASS + 1))
    split = dict(read_rows(birds_dir / "train_test_split.txt"))
    bboxes = {
        row[0]: tuple(float(v) for v in row[1:])
        for row in read_rows(birds_dir / "bounding_boxes.txt")
    }
    visible_part_count = sum(
        row[4] == "1" for row in read_rows(birds_dir / "parts" / "part_locs.txt")
    )
    for image in dataset.images:
        assert image.relative_path.split("/")[0] == image.class_name
        assert dataset.image_path(image).is_file()
        assert image.is_train == (split[str(image.image_id)] == "1")
        assert image.bbox == bboxes[str(image.image_id)]
        assert set(image.parts) <= set(PART_NAMES)
    assert sum(len(image.parts) for image in dataset.images) == visible_part_count
    assert any(image.is_train for image in dataset.images)
    assert not all(image.is_train for image in dataset.images)


def test_read_cub_without_the_optional_files(copy_of_birds):
    (copy_of_birds / "bounding_boxes.txt").unlink()
    shutil.rmtree(copy_of_birds / "parts")

    dataset = read_cub(copy_of_birds)

    assert len(dataset.images) == 8 * PER_CLASS
    assert {image.bbox for image in dataset.images} == {None}
    assert all(image.parts == {} for image in dataset.images)


@pytest.mark.parametrize(
    "name", ["062.Herring_Gull", "062.herring_gull", "Herring_Gull", "Herring Gull", "herring gull"]
)
def test_read_cub_filters_classes_by_any_name_form(birds_dir, name):
    dataset = read_cub(birds_dir, classes=[name])

    assert dataset.class_names == ["062.Herring_Gull"]
    assert len(dataset.images) == PER_CLASS
    assert {image.class_name for image in dataset.images} == {"062.Herring_Gull"}


def test_read_cub_keeps_classes_txt_order_when_filtering(birds_dir):
    dataset = read_cub(birds_dir, classes=["Western Gull", "California_Gull"])
    assert dataset.class_names == ["059.California_Gull", "066.Western_Gull"]
    assert len(dataset.images) == 2 * PER_CLASS


@pytest.mark.parametrize("name", ["Blue Jay", "060.California_Gull"])
def test_read_cub_names_an_unknown_class_and_lists_valid_ones(birds_dir, name):
    with pytest.raises(CubFormatError, match="unknown class") as raised:
        read_cub(birds_dir, classes=["Herring Gull", name])
    assert repr(name) in str(raised.value)
    assert "059.California_Gull" in str(raised.value)


def test_read_cub_checks_image_files_only_for_the_wanted_classes(copy_of_birds):
    shutil.rmtree(copy_of_birds / "images" / "059.California_Gull")
    dataset = read_cub(copy_of_birds, classes=["Herring Gull"])
    assert len(dataset.images) == PER_CLASS


def replace_line(path: Path, line_number: int, new_text: str | None) -> None:
    """Replace (or, with None, delete) one 1-based line of a file."""
    lines = path.read_text().splitlines()
    if new_text is None:
        del lines[line_number - 1]
    else:
        lines[line_number - 1] = new_text
    path.write_text("\n".join(lines) + "\n")


def append_line(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text + "\n")


def delete_file(path: Path) -> None:
    path.unlink()


CORRUPTIONS = {
    "missing required file": (
        lambda root: delete_file(root / "image_class_labels.txt"),
        "image_class_labels.txt",
        None,
    ),
    "images.txt line without a path": (
        lambda root: replace_line(root / "images.txt", 3, "3"),
        "images.txt",
        3,
    ),
    "classes.txt line without an id": (
        lambda root: replace_line(root / "classes.txt", 2, "Glaucous_winged_Gull"),
        "classes.txt",
        2,
    ),
    "split flag that is not 0 or 1": (
        lambda root: replace_line(root / "train_test_split.txt", 4, "4 2"),
        "train_test_split.txt",
        4,
    ),
    "bounding box with a missing field": (
        lambda root: replace_line(root / "bounding_boxes.txt", 6, "6 1.0 2.0 3.0"),
        "bounding_boxes.txt",
        6,
    ),
    "bounding box with a word": (
        lambda root: replace_line(root / "bounding_boxes.txt", 2, "2 1.0 two 3.0 4.0"),
        "bounding_boxes.txt",
        2,
    ),
    "label naming an unknown class": (
        lambda root: replace_line(root / "image_class_labels.txt", 7, "7 200"),
        "image_class_labels.txt",
        7,
    ),
    "image missing from the labels": (
        lambda root: replace_line(root / "image_class_labels.txt", 5, None),
        "images.txt",
        5,
    ),
    "image only in the split": (
        lambda root: append_line(root / "train_test_split.txt", "999 1"),
        "train_test_split.txt",
        8 * PER_CLASS + 1,
    ),
    "image file missing": (
        lambda root: delete_file(
            root / "images" / "059.California_Gull" / "California_Gull_0004.jpg"
        ),
        "images.txt",
        4,
    ),
    "part location that does not parse": (
        lambda root: replace_line(root / "parts" / "part_locs.txt", 9, "1 9 1.0 2.0"),
        "part_locs.txt",
        9,
    ),
    "part location with an unknown part": (
        lambda root: replace_line(root / "parts" / "part_locs.txt", 10, "1 16 1.0 2.0 1"),
        "part_locs.txt",
        10,
    ),
    "part location of an unknown image": (
        lambda root: append_line(root / "parts" / "part_locs.txt", "999 1 1.0 2.0 1"),
        "part_locs.txt",
        8 * PER_CLASS * 15 + 1,
    ),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_read_cub_reports_malformed_input_with_file_and_line(copy_of_birds, case):
    corrupt, file_name, line_number = CORRUPTIONS[case]
    corrupt(copy_of_birds)

    with pytest.raises(CubFormatError) as raised:
        read_cub(copy_of_birds)

    message = str(raised.value)
    assert file_name in message
    if line_number is not None:
        assert f"line {line_number}:" in message
    assert isinstance(raised.value, ValueError)


def test_display_name_keeps_cubs_hyphens_and_apostrophes():
    assert display_name("059.California_Gull") == "California Gull"
    assert display_name("060.Glaucous_winged_Gull") == "Glaucous-winged Gull"
    assert display_name("061.Heermann_Gull") == "Heermann's Gull"
    assert display_name("022.Chuck_will_Widow") == "Chuck-will's-widow"
    assert display_name("146.Forsters_Tern") == "Forster's Tern"
    assert display_name("Herring_Gull") == "Herring Gull"
    # Only punctuation changes (and CUB's misspelling of Arctic).
    assert len(CUB_DISPLAY_NAMES) == 69
    for source, shown in CUB_DISPLAY_NAMES.items():
        words = shown.replace("-", " ").replace("'s", "").replace("'", "").lower().split()
        expected = source.replace("Forsters", "Forster").replace("Artic", "Arctic")
        assert words == expected.lower().split("_"), source


def test_classes_are_found_by_folder_or_display_name(tiny_birds_dir):
    for spelling in ("Glaucous-winged Gull", "Glaucous winged Gull", "Glaucous_winged_Gull"):
        dataset = read_cub(tiny_birds_dir, classes=[spelling])
        assert dataset.class_names == ["060.Glaucous_winged_Gull"]
    dataset = read_cub(tiny_birds_dir, classes=["Heermann's Gull"])
    assert dataset.class_names == ["061.Heermann_Gull"]


def test_datasets_package_does_not_import_django():
    code = (
        "import sys\n"
        "import explain_engine.datasets.cub, explain_engine.datasets.synthetic_birds\n"
        "assert not any(name.split('.')[0] == 'django' for name in sys.modules), 'django'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])


def test_labelled_items_split_and_index_by_class_order(tiny_birds_dir):
    dataset = read_cub(tiny_birds_dir)
    train, test = dataset.labelled_items()
    assert len(train) + len(test) == len(dataset.images)
    by_path = {dataset.image_path(image): image for image in dataset.images}
    for items, is_train in ((train, True), (test, False)):
        for path, class_index in items:
            image = by_path[path]
            assert image.is_train is is_train
            assert dataset.class_names[class_index] == image.class_name
