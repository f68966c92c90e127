"""A synthetic fine-grained gull data set, written in the CUB-200-2011 layout.

Eight "gull" species named after the CUB-200-2011 gull classes. Each species is identified
by either of two disjoint sets of small field marks, as field guides give real gulls several
independent marks:

- set "bill and eye ring", on the head: the bill's marks (plain, a red spot on the lower
  mandible, a black ring, or both) and the eye ring, red or yellow;
- set "wing tip and legs", on the body: the wing tip (the folded primaries past the tail),
  black or pale grey, and the legs, pink, yellow, black or red.

The two sets lie apart on the bird (head against body), so that an explanation of one set
need not show the other: at SAG's 7 x 7 patches at 128 px, the cells that show one set
share none with the cells that show the other on most photos (``benchmarks/mark_sets.py``).

Each set alone determines the species (`species_from_marks`), no other set of marks without
one of them does (`minimal_sufficient_mark_sets`), so every image has at least two disjoint
minimal sufficient explanations by construction. Everything else varies inside every species
as nuisance: mantle shade, body proportions, bill length, head posture, position, scale,
rotation, facing direction and the beach background. The mark assignment is invented for
this data set.

With ``distant_per_class``, each species also gets that many test-only photos of a distant
bird in sea haze (the bird at about half its usual size, every colour pulled toward a pale
grey): the hard photos a real test set holds, unlike any training photo. A classifier trained
on the others errs on many of them (the shipped demo classifier on about 4 in 10), so a study
can draw the AI's errors from its test split. They are written after all the other images,
so adding them changes no other image, id or split.

Besides the CUB files, the generator writes ``ground_truth.json``: the marks, their values
per species, the minimal sufficient sets, the CUB parts each mark lies on, and per image the
box (x, y, width, height in pixels, as ``bounding_boxes.txt``) of every mark
(`read_ground_truth`).

Example:

    generate_synthetic_birds(Path("media/synthetic_birds"), per_class=60, seed=0)
    dataset = read_cub(Path("media/synthetic_birds"))
    truth = read_ground_truth(Path("media/synthetic_birds"))
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

Point = tuple[float, float]
Colour = tuple[int, int, int]

PART_NAMES: tuple[str, ...] = (
    "back",
    "beak",
    "belly",
    "breast",
    "crown",
    "forehead",
    "left eye",
    "left leg",
    "left wing",
    "nape",
    "right eye",
    "right leg",
    "right wing",
    "tail",
    "throat",
)

WING_TIP_COLOURS: dict[str, Colour] = {
    "black": (25, 25, 30),
    "pale grey": (200, 204, 214),
}
BILL_MARKS: tuple[str, ...] = ("plain", "red spot", "black ring", "red spot and black ring")
LEG_COLOURS: dict[str, Colour] = {
    "pink": (238, 146, 170),
    "yellow": (240, 204, 30),
    "black": (40, 38, 42),
    "red": (205, 40, 35),
}
EYE_RING_COLOURS: dict[str, Colour] = {
    "red": (210, 35, 35),
    "yellow": (240, 210, 50),
}
BILL_SPOT_COLOUR: Colour = (215, 25, 25)
BILL_RING_COLOUR: Colour = (30, 28, 28)

#: The field marks, in the order `Species.marks` gives them, and the CUB parts each lies on
#: (the wing tip is the end of the folded near wing).
MARKS: tuple[str, ...] = ("wing tip", "bill", "legs", "eye ring")
MARK_PARTS: dict[str, tuple[str, ...]] = {
    "wing tip": ("left wing", "right wing"),
    "bill": ("beak",),
    "legs": ("left leg", "right leg"),
    "eye ring": ("left eye", "right eye"),
}
#: The two disjoint sets of marks that each identify the species.
MARK_SETS: tuple[tuple[str, ...], ...] = (("wing tip", "legs"), ("bill", "eye ring"))


@dataclass(frozen=True)
class Species:
    """One synthetic species: its CUB class number and name, and its four field marks."""

    cub_number: int
    name: str
    wing_tip: str  # a key of WING_TIP_COLOURS
    bill: str  # one of BILL_MARKS
    legs: str  # a key of LEG_COLOURS
    eye_ring: str  # a key of EYE_RING_COLOURS

    @property
    def folder_name(self) -> str:
        return f"{self.cub_number:03d}.{self.name}"

    @property
    def marks(self) -> dict[str, str]:
        """Mark name (as in `MARKS`) -> this species' value."""
        return {
            "wing tip": self.wing_tip,
            "bill": self.bill,
            "legs": self.legs,
            "eye ring": self.eye_ring,
        }


# The mark table, in class order. Each of the two mark sets takes all 8 combinations of its
# values once; the pairing between the sets is chosen so that no pair of marks across the
# sets tells all species apart (`minimal_sufficient_mark_sets` checks it). The eye ring and
# the bill's marks are drawn large enough to read at the demo classifier's 128 px. Class ids in
# classes.txt are the CUB numbers, as in the real CUB-200-2011 where the id always equals the
# folder number.
SPECIES_TABLE: tuple[Species, ...] = (
    Species(59, "California_Gull", "black", "plain", legs="pink", eye_ring="red"),
    Species(60, "Glaucous_winged_Gull", "pale grey", "red spot", legs="pink", eye_ring="red"),
    Species(61, "Heermann_Gull", "black", "black ring", legs="yellow", eye_ring="red"),
    Species(62, "Herring_Gull", "black", "red spot and black ring", legs="black", eye_ring="red"),
    Species(63, "Ivory_Gull", "pale grey", "plain", legs="yellow", eye_ring="yellow"),
    Species(64, "Ring_billed_Gull", "pale grey", "red spot", legs="red", eye_ring="yellow"),
    Species(65, "Slaty_backed_Gull", "black", "black ring", legs="red", eye_ring="yellow"),
    Species(
        66, "Western_Gull", "pale grey", "red spot and black ring", legs="black", eye_ring="yellow"
    ),
)
SPECIES: tuple[str, ...] = tuple(species.name for species in SPECIES_TABLE)


def species_from_marks(marks: dict[str, str]) -> Species | None:
    """The label rule: the one species whose marks match all of `marks` (a subset of
    `MARKS` -> value), or None when several (or none) do."""
    unknown = sorted(set(marks) - set(MARKS))
    if unknown:
        raise ValueError(f"unknown marks {unknown}; the marks are {list(MARKS)}")
    matching = [
        species
        for species in SPECIES_TABLE
        if all(species.marks[name] == value for name, value in marks.items())
    ]
    return matching[0] if len(matching) == 1 else None


def sufficient_mark_sets(species: Species) -> list[tuple[str, ...]]:
    """The minimal sets of marks whose values tell `species` from every other species,
    smallest first (ties in `MARKS` order): both `MARK_SETS`, and for some species also a
    pair across them (a value combination no other species has)."""
    found: list[tuple[str, ...]] = []
    for size in range(1, len(MARKS) + 1):
        for names in itertools.combinations(MARKS, size):
            if any(set(smaller) <= set(names) for smaller in found):
                continue
            values = {name: species.marks[name] for name in names}
            if species_from_marks(values) == species:
                found.append(names)
    return found


def minimal_sufficient_mark_sets() -> list[tuple[str, ...]]:
    """Every set of marks whose values tell all species apart while no smaller subset of it
    does, from `SPECIES_TABLE`, smallest first (ties in `MARKS` order)."""
    found: list[tuple[str, ...]] = []
    for size in range(1, len(MARKS) + 1):
        for names in itertools.combinations(MARKS, size):
            if any(set(smaller) <= set(names) for smaller in found):
                continue
            values = {tuple(s.marks[name] for name in names) for s in SPECIES_TABLE}
            if len(values) == len(SPECIES_TABLE):
                found.append(names)
    return found


JPEG_QUALITY = 92
# Drawing at twice the size and averaging down gives anti-aliased edges, which PIL's
# polygon drawing lacks; part coordinates are reported in the final image's pixels.
SUPERSAMPLING = 2
#: Distant photos: the bird at this share of its usual size, in sea haze of this strength.
DISTANT_SCALE = 0.55
DISTANT_HAZE = (0.2, 0.35)
HAZE_GREY = 215.0

METADATA_FILES = (
    "images.txt",
    "classes.txt",
    "image_class_labels.txt",
    "train_test_split.txt",
    "bounding_boxes.txt",
    "parts/parts.txt",
    "parts/part_locs.txt",
    "ground_truth.json",
)
GROUND_TRUTH_FILE = "ground_truth.json"


def generate_synthetic_birds(
    out_dir: Path,
    *,
    per_class: int,
    seed: int,
    image_size: int = 224,
    test_fraction: float = 0.3,
    distant_per_class: int = 0,
) -> None:
    """Draw `per_class` images of each of the 8 species into `out_dir` in the CUB layout,
    then `distant_per_class` distant, hazy test photos of each (see the module docstring).

    The same arguments always give byte-identical files. Image k of a class depends only on
    (seed, class, k), so a larger `per_class` adds images without changing the first ones
    (the train/test split may change). Refuses to write into a folder that already holds a
    data set.
    """
    if distant_per_class < 0:
        raise ValueError(f"distant_per_class must be 0 or more, got {distant_per_class}")
    out_dir = Path(out_dir)
    _check_arguments(out_dir, per_class, seed, image_size, test_fraction)

    image_lines: list[str] = []
    label_lines: list[str] = []
    split_lines: list[str] = []
    bbox_lines: list[str] = []
    part_loc_lines: list[str] = []
    mark_boxes: dict[str, dict[str, list[float]]] = {}
    split_rng = np.random.default_rng([seed, 1])
    draws = []  # (species, rng, file name, is test, distant), in image id order
    for class_index, species in enumerate(SPECIES_TABLE):
        (out_dir / "images" / species.folder_name).mkdir(parents=True, exist_ok=True)
        is_test = _stratified_test_mask(split_rng, per_class, test_fraction)
        for k in range(per_class):
            rng = np.random.default_rng([seed, 0, class_index, k])
            draws.append((species, rng, f"{species.name}_{k + 1:04d}", bool(is_test[k]), False))
    for class_index, species in enumerate(SPECIES_TABLE):
        for k in range(distant_per_class):
            rng = np.random.default_rng([seed, 2, class_index, k])
            draws.append((species, rng, f"{species.name}_distant_{k + 1:04d}", True, True))
    for image_id, (species, rng, file_name, test, distant) in enumerate(draws, start=1):
        drawing = _draw_image(rng, species, image_size, distant=distant)
        relative_path = f"{species.folder_name}/{file_name}.jpg"
        drawing.image.save(
            out_dir / "images" / relative_path,
            format="JPEG",
            quality=JPEG_QUALITY,
            subsampling=0,  # 4:4:4 keeps the colour of thin legs and the bill spot
        )
        image_lines.append(f"{image_id} {relative_path}")
        label_lines.append(f"{image_id} {species.cub_number}")
        split_lines.append(f"{image_id} {0 if test else 1}")
        x, y, w, h = drawing.bbox
        bbox_lines.append(f"{image_id} {x:.1f} {y:.1f} {w:.1f} {h:.1f}")
        mark_boxes[str(image_id)] = {
            name: [round(value, 1) for value in box] for name, box in drawing.mark_boxes.items()
        }
        for part_id, part_name in enumerate(PART_NAMES, start=1):
            location = drawing.parts.get(part_name)
            if location is None:
                part_loc_lines.append(f"{image_id} {part_id} 0.0 0.0 0")
            else:
                part_loc_lines.append(f"{image_id} {part_id} {location[0]:.1f} {location[1]:.1f} 1")

    class_lines = [f"{s.cub_number} {s.folder_name}" for s in SPECIES_TABLE]
    part_lines = [f"{part_id} {name}" for part_id, name in enumerate(PART_NAMES, start=1)]
    (out_dir / "parts").mkdir(exist_ok=True)
    _write_lines(out_dir / "images.txt", image_lines)
    _write_lines(out_dir / "classes.txt", class_lines)
    _write_lines(out_dir / "image_class_labels.txt", label_lines)
    _write_lines(out_dir / "train_test_split.txt", split_lines)
    _write_lines(out_dir / "bounding_boxes.txt", bbox_lines)
    _write_lines(out_dir / "parts" / "parts.txt", part_lines)
    _write_lines(out_dir / "parts" / "part_locs.txt", part_loc_lines)
    ground_truth = {
        "image_size": image_size,
        "marks": {
            name: {"cub_parts": list(MARK_PARTS[name]), "values": _mark_values(name)}
            for name in MARKS
        },
        "species": {s.folder_name: s.marks for s in SPECIES_TABLE},
        "minimal_sufficient_sets": [list(names) for names in minimal_sufficient_mark_sets()],
        "sufficient_sets_by_species": {
            s.folder_name: [list(names) for names in sufficient_mark_sets(s)] for s in SPECIES_TABLE
        },
        "mark_boxes": mark_boxes,
    }
    with open(out_dir / GROUND_TRUTH_FILE, "w", encoding="utf-8", newline="\n") as file:
        json.dump(ground_truth, file, indent=1, sort_keys=True)
        file.write("\n")


@dataclass(frozen=True)
class GroundTruth:
    """What ``ground_truth.json`` holds (see the module docstring).

    ``species``: folder-style class name -> mark -> value. ``minimal_sufficient_sets``: the
    sets of marks each of which alone determines the species. ``sufficient_sets_by_species``:
    class name -> the minimal sets of marks that tell that species from all others (the two
    above, and for some species a pair across them). ``mark_boxes``: image id (as
    in images.txt) -> mark -> (x, y, width, height) in pixels of the generated image, which
    is ``image_size`` pixels square.
    """

    image_size: int
    marks: dict[str, dict]
    species: dict[str, dict[str, str]]
    minimal_sufficient_sets: list[tuple[str, ...]]
    sufficient_sets_by_species: dict[str, list[tuple[str, ...]]]
    mark_boxes: dict[int, dict[str, tuple[float, float, float, float]]]


def read_ground_truth(root: Path) -> GroundTruth:
    """Read the ``ground_truth.json`` a `generate_synthetic_birds` call wrote into `root`."""
    with open(Path(root) / GROUND_TRUTH_FILE, encoding="utf-8") as file:
        data = json.load(file)
    return GroundTruth(
        image_size=int(data["image_size"]),
        marks=data["marks"],
        species=data["species"],
        minimal_sufficient_sets=[tuple(names) for names in data["minimal_sufficient_sets"]],
        sufficient_sets_by_species={
            name: [tuple(names) for names in sets]
            for name, sets in data["sufficient_sets_by_species"].items()
        },
        mark_boxes={
            int(image_id): {name: tuple(box) for name, box in boxes.items()}
            for image_id, boxes in data["mark_boxes"].items()
        },
    )


def _mark_values(name: str) -> list[str]:
    return {
        "wing tip": list(WING_TIP_COLOURS),
        "bill": list(BILL_MARKS),
        "legs": list(LEG_COLOURS),
        "eye ring": list(EYE_RING_COLOURS),
    }[name]


def _check_arguments(
    out_dir: Path, per_class: int, seed: int, image_size: int, test_fraction: float
) -> None:
    if per_class < 2:
        raise ValueError(
            f"per_class must be at least 2 (one train and one test image), got {per_class}"
        )
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if image_size < 64:
        raise ValueError(f"image_size must be at least 64 pixels, got {image_size}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    images_dir = out_dir / "images"
    if images_dir.is_dir() and any(images_dir.iterdir()):
        raise ValueError(
            f"{images_dir} already holds files; refusing to overwrite an existing data set"
        )
    existing = [name for name in METADATA_FILES if (out_dir / name).exists()]
    if existing:
        raise ValueError(
            f"{out_dir} already holds {', '.join(existing)}; "
            "refusing to overwrite an existing data set"
        )


def _stratified_test_mask(
    rng: np.random.Generator, per_class: int, test_fraction: float
) -> np.ndarray:
    """Which of a class's images are test images: round(per_class * test_fraction) of them,
    at least one and never all."""
    test_count = min(max(round(per_class * test_fraction), 1), per_class - 1)
    is_test = np.zeros(per_class, dtype=bool)
    is_test[rng.permutation(per_class)[:test_count]] = True
    return is_test


def _write_lines(path: Path, lines: list[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as file:
        file.write("".join(line + "\n" for line in lines))


# ---------------------------------------------------------------------------------------
# Drawing


@dataclass(frozen=True)
class _Shape:
    points: list[Point]
    fill: Colour


@dataclass(frozen=True)
class _Bird:
    """A bird in its own frame: facing +x, y pointing down, about 160 x 120 units.

    Shapes are in drawing order. Parts are keyed "near eye", "far leg", ...: which of
    left and right is near depends on the facing direction, decided later. ``marks``: each
    field mark's shapes, as indices into ``shapes``.
    """

    shapes: list[_Shape]
    parts: dict[str, Point]
    marks: dict[str, list[int]]


@dataclass(frozen=True)
class _Drawing:
    image: Image.Image
    bbox: tuple[float, float, float, float]  # x, y, width, height in pixels
    parts: dict[str, Point]  # visible CUB parts only
    mark_boxes: dict[str, tuple[float, float, float, float]]  # x, y, width, height in pixels


def _draw_image(
    rng: np.random.Generator, species: Species, image_size: int, *, distant: bool = False
) -> _Drawing:
    bird = _build_bird(rng, species)

    # Pose: the bird faces right (showing its right side) unless flipped.
    facing_left = bool(rng.random() < 0.5)
    angle = math.radians(rng.uniform(-12, 12))
    scale = rng.uniform(0.72, 1.02) * image_size / 224
    if distant:
        scale *= DISTANT_SCALE
    flip = -1.0 if facing_left else 1.0
    cos_a, sin_a = math.cos(angle), math.sin(angle)

    def rotate(point: Point) -> Point:
        x, y = point[0] * flip * scale, point[1] * scale
        return (x * cos_a - y * sin_a, x * sin_a + y * cos_a)

    all_points = [rotate(p) for shape in bird.shapes for p in shape.points]
    min_x = min(p[0] for p in all_points)
    max_x = max(p[0] for p in all_points)
    min_y = min(p[1] for p in all_points)
    max_y = max(p[1] for p in all_points)
    # Place the bird anywhere that keeps it wholly inside the image.
    margin = 0.02 * image_size
    offset_x = rng.uniform(margin - min_x, image_size - margin - max_x)
    offset_y = rng.uniform(margin - min_y, image_size - margin - max_y)

    def place(point: Point) -> Point:
        x, y = rotate(point)
        return (x + offset_x, y + offset_y)

    canvas_size = image_size * SUPERSAMPLING
    canvas = Image.fromarray(_background_pixels(rng, canvas_size))
    draw = ImageDraw.Draw(canvas)
    _draw_clutter(rng, draw, canvas_size)
    for shape in bird.shapes:
        draw.polygon(
            [(x * SUPERSAMPLING, y * SUPERSAMPLING) for x, y in map(place, shape.points)],
            fill=shape.fill,
        )
    image = canvas.resize((image_size, image_size), Image.Resampling.BOX)

    # Light sensor noise, so that flat colours are not a give-away of drawn pixels.
    pixels = np.asarray(image, dtype=np.float32)
    pixels += rng.normal(0.0, 3.0, size=pixels.shape).astype(np.float32)
    if distant:
        # sea haze: every colour pulled toward a pale grey, the marks' contrast with it
        haze = rng.uniform(*DISTANT_HAZE)
        pixels = pixels * (1 - haze) + np.float32(HAZE_GREY) * haze
    image = Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8))

    near, far = ("left", "right") if facing_left else ("right", "left")
    parts: dict[str, Point] = {}
    for key, point in bird.parts.items():
        side, _, part = key.partition(" ")
        name = {"near": f"{near} {part}", "far": f"{far} {part}"}.get(side, key)
        parts[name] = place(point)
    bbox = (
        min_x + offset_x,
        min_y + offset_y,
        max_x - min_x,
        max_y - min_y,
    )
    mark_boxes = {}
    for name, indices in bird.marks.items():
        placed = [place(p) for index in indices for p in bird.shapes[index].points]
        xs, ys = [p[0] for p in placed], [p[1] for p in placed]
        mark_boxes[name] = (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))
    return _Drawing(image=image, bbox=bbox, parts=parts, mark_boxes=mark_boxes)


def _ellipse(cx: float, cy: float, rx: float, ry: float, tilt_degrees: float = 0.0) -> list[Point]:
    """An ellipse as a polygon, so that it rotates and flips like every other shape."""
    tilt = math.radians(tilt_degrees)
    points = []
    for i in range(32):
        t = 2 * math.pi * i / 32
        x, y = rx * math.cos(t), ry * math.sin(t)
        points.append(
            (
                cx + x * math.cos(tilt) - y * math.sin(tilt),
                cy + x * math.sin(tilt) + y * math.cos(tilt),
            )
        )
    return points


def _thick_line(start: Point, end: Point, width: float) -> list[Point]:
    dx, dy = end[0] - start[0], end[1] - start[1]
    length = math.hypot(dx, dy)
    nx, ny = -dy / length * width / 2, dx / length * width / 2
    return [
        (start[0] + nx, start[1] + ny),
        (end[0] + nx, end[1] + ny),
        (end[0] - nx, end[1] - ny),
        (start[0] - nx, start[1] - ny),
    ]


def _shade(colour: Colour, factor: float) -> Colour:
    return (int(colour[0] * factor), int(colour[1] * factor), int(colour[2] * factor))


def _build_bird(rng: np.random.Generator, species: Species) -> _Bird:
    # Nuisance traits, drawn the same way for every species.
    length = rng.uniform(0.9, 1.12)  # body length factor
    height = rng.uniform(0.9, 1.1)  # body depth factor
    grey = rng.uniform(105, 180)
    mantle = (int(grey), int(grey + 4), int(grey + 10))
    white_level = int(rng.uniform(240, 252))
    white = (white_level, white_level, min(white_level + 3, 255))
    head_lift = rng.uniform(-5, 4)
    bill_length = rng.uniform(17, 22)
    leg_length = rng.uniform(26, 33)
    bill_yellow = (int(rng.uniform(225, 245)), int(rng.uniform(190, 215)), 55)

    wing_tip = WING_TIP_COLOURS[species.wing_tip]
    leg = LEG_COLOURS[species.legs]
    eye_ring = EYE_RING_COLOURS[species.eye_ring]

    head_x, head_y, head_r = 38 * length, -30 * height + head_lift, 13.0
    bill_x, bill_y = head_x + head_r * 0.8, head_y + 1.5
    shapes: list[_Shape] = []
    parts: dict[str, Point] = {}
    marks: dict[str, list[int]] = {name: [] for name in MARKS}

    def add(shape: _Shape, mark: str | None = None) -> None:
        if mark is not None:
            marks[mark].append(len(shapes))
        shapes.append(shape)

    # Legs first, so that the body hides their tops. The far leg is a shade darker.
    for side, leg_x, leg_top, colour in (
        ("far", -11 * length, 12 * height, _shade(leg, 0.88)),
        ("near", 5 * length, 15 * height, leg),
    ):
        ankle = (leg_x + 2, 16 * height + leg_length)
        add(_Shape(_thick_line((leg_x, leg_top), ankle, 5.5), colour), "legs")
        add(
            _Shape(
                [
                    (ankle[0] - 3, ankle[1] - 1.5),
                    (ankle[0] + 9, ankle[1] + 1.5),
                    (ankle[0] + 8, ankle[1] + 3.5),
                    (ankle[0] - 3, ankle[1] + 2.5),
                ],
                colour,
            ),
            "legs",
        )
        # On the tarsus, well below the belly.
        parts[f"{side} leg"] = (leg_x + 1.4, ankle[1] - leg_length * 0.3)

    # Tail, body, neck, head: white.
    shapes.append(
        _Shape(
            [
                (-30 * length, -8 * height),
                (-58 * length, -7 * height),
                (-61 * length, 1 * height),
                (-30 * length, 12 * height),
            ],
            white,
        )
    )
    # Below the folded wing tip, where the white tail shows.
    parts["tail"] = (-46 * length, 4.5 * height)
    shapes.append(_Shape(_ellipse(0, 0, 41 * length, 22 * height, -10), white))
    shapes.append(
        _Shape(
            [
                (10 * length, -19 * height),
                (head_x - 11, head_y + 2),
                (head_x + 10, head_y + 7),
                (38 * length, 0),
            ],
            white,
        )
    )
    shapes.append(_Shape(_ellipse(head_x, head_y, head_r, head_r * 0.92), white))
    parts["belly"] = (-4 * length, 14 * height)
    parts["breast"] = (27 * length, 2 * height)
    parts["crown"] = (head_x - 1, head_y - head_r * 0.8)
    parts["forehead"] = (head_x + head_r * 0.65, head_y - head_r * 0.6)
    parts["nape"] = (head_x - head_r * 0.85, head_y + head_r * 0.2)
    parts["throat"] = (head_x + head_r * 0.45, head_y + head_r * 0.85)

    # Wing tip (folded primaries) past the tail, then the folded wing over its base.
    tip_base_x = -30 * length
    add(
        _Shape(
            [
                (tip_base_x, -15 * height),
                (tip_base_x - 30, -10 * height),
                (tip_base_x - 44, -3 * height),
                (tip_base_x - 32, 1 * height),
                (tip_base_x, 4 * height),
            ],
            wing_tip,
        ),
        "wing tip",
    )
    # Small white "mirror" spots at the very tip, on both colours.
    add(_Shape(_ellipse(tip_base_x - 37, -3.5 * height, 3.2, 1.8, 20), white), "wing tip")
    shapes.append(
        _Shape(
            [
                (16 * length, -17 * height),
                (-8 * length, -22 * height),
                (-36 * length, -14 * height),
                (-44 * length, -5 * height),
                (-30 * length, 6 * height),
                (-6 * length, 9 * height),
                (14 * length, 1 * height),
                (21 * length, -8 * height),
            ],
            mantle,
        )
    )
    # White trailing edge of the tertials, as on real gulls.
    shapes.append(
        _Shape(
            [
                (-30 * length, 6 * height),
                (-6 * length, 9 * height),
                (-6 * length, 6.5 * height),
                (-29 * length, 3.5 * height),
            ],
            white,
        )
    )
    parts["back"] = (-8 * length, -17 * height)
    parts["near wing"] = (-16 * length, -4 * height)

    # Bill: yellow, hooked at the tip; a black ring across both mandibles and/or a red spot
    # on the lower mandible nearer the tip, as the species has.
    bill = bill_length
    add(
        _Shape(
            [
                (bill_x - 1, bill_y - 3.4),
                (bill_x + bill * 0.7, bill_y - 2.6),
                (bill_x + bill, bill_y - 0.6),
                (bill_x + bill * 0.96, bill_y + 1.8),
                (bill_x + bill * 0.8, bill_y + 2.0),
                (bill_x + bill * 0.7, bill_y + 4.3),
                (bill_x + bill * 0.45, bill_y + 3.3),
                (bill_x - 1, bill_y + 3.6),
            ],
            bill_yellow,
        ),
        "bill",
    )
    if "black ring" in species.bill:
        ring_x = bill_x + bill * 0.5
        add(
            _Shape(
                [
                    (ring_x - 2.4, bill_y - 3.2),
                    (ring_x + 2.4, bill_y - 3.1),
                    (ring_x + 2.4, bill_y + 3.9),
                    (ring_x - 2.4, bill_y + 3.8),
                ],
                BILL_RING_COLOUR,
            ),
            "bill",
        )
    if "red spot" in species.bill:
        add(
            _Shape(_ellipse(bill_x + bill * 0.76, bill_y + 2.0, 4.2, 3.4), BILL_SPOT_COLOUR),
            "bill",
        )
    parts["beak"] = (bill_x + bill * 0.45, bill_y)

    # Eye on the near side, in its coloured ring.
    eye = (head_x + head_r * 0.35, head_y - head_r * 0.22)
    add(_Shape(_ellipse(eye[0], eye[1], 5.5, 5.5), eye_ring), "eye ring")
    add(_Shape(_ellipse(eye[0], eye[1], 2.2, 2.2), (25, 20, 15)), "eye ring")
    parts["near eye"] = eye

    return _Bird(shapes=shapes, parts=parts, marks=marks)


def _background_pixels(rng: np.random.Generator, size: int) -> np.ndarray:
    """Sky over sea, sand, or sea then sand, each a vertical colour gradient."""
    rows = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None]
    horizon = rng.uniform(0.3, 0.75)
    sky_top = np.array([rng.uniform(90, 140), rng.uniform(140, 180), rng.uniform(200, 235)])
    sky_low = np.array([rng.uniform(185, 215), rng.uniform(205, 228), rng.uniform(225, 245)])
    sea_far = np.array([rng.uniform(50, 80), rng.uniform(100, 130), rng.uniform(130, 160)])
    sea_near = np.array([rng.uniform(70, 100), rng.uniform(130, 160), rng.uniform(150, 175)])
    sand_far = np.array([rng.uniform(200, 225), rng.uniform(180, 200), rng.uniform(135, 160)])
    sand_near = np.array([rng.uniform(175, 200), rng.uniform(150, 175), rng.uniform(105, 130)])
    ground = ("sea", "sand", "sea then sand")[int(rng.integers(3))]
    shore = rng.uniform(horizon + 0.1, 0.95) if ground == "sea then sand" else 1.0

    def blend(near_colour: np.ndarray, far_colour: np.ndarray, t: np.ndarray) -> np.ndarray:
        return far_colour[None, :] * (1 - t) + near_colour[None, :] * t

    column = np.empty((size, 3), dtype=np.float32)
    sky = rows[:, 0] < horizon
    column[sky] = blend(sky_low, sky_top, rows[sky] / horizon)
    below = ~sky
    t_below = (rows[below] - horizon) / (1 - horizon)
    if ground == "sand":
        column[below] = blend(sand_near, sand_far, t_below)
    else:
        column[below] = blend(sea_near, sea_far, t_below)
        sand = rows[:, 0] >= shore
        column[sand] = blend(sand_near, sand_far, (rows[sand] - shore) / (1 - shore + 1e-6))
    pixels = np.repeat(column[:, None, :], size, axis=1)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _draw_clutter(rng: np.random.Generator, draw: ImageDraw.ImageDraw, size: int) -> None:
    """Clouds, waves, pebbles, driftwood and a post: things a classifier must learn to
    ignore. Their colours avoid the species' pink, yellow and red."""
    for _ in range(int(rng.integers(0, 4))):  # clouds
        cx, cy = rng.uniform(0, size), rng.uniform(0, size * 0.35)
        shade = int(rng.uniform(230, 250))
        for _ in range(int(rng.integers(3, 6))):
            rx, ry = rng.uniform(0.04, 0.1) * size, rng.uniform(0.02, 0.05) * size
            x, y = cx + rng.uniform(-0.08, 0.08) * size, cy + rng.uniform(-0.02, 0.02) * size
            draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=(shade, shade, shade))
    for _ in range(int(rng.integers(3, 12))):  # wave crests or ripples
        y = rng.uniform(0.45, 1.0) * size
        x = rng.uniform(0, size)
        half = rng.uniform(0.03, 0.12) * size
        shade = int(rng.uniform(150, 220))
        draw.line((x - half, y, x + half, y), fill=(shade, shade + 10, shade + 15), width=2)
    for _ in range(int(rng.integers(0, 14))):  # pebbles
        x, y = rng.uniform(0, size), rng.uniform(0.6, 1.0) * size
        rx = rng.uniform(0.006, 0.025) * size
        ry = rx * rng.uniform(0.5, 0.9)
        grey = int(rng.uniform(90, 170))
        brown = int(rng.uniform(0, 25))
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=(grey + brown, grey, grey - brown))
    if rng.random() < 0.4:  # driftwood
        x, y = rng.uniform(0, size), rng.uniform(0.7, 0.95) * size
        half = rng.uniform(0.08, 0.2) * size
        tilt = rng.uniform(-0.05, 0.05) * size
        wood = (int(rng.uniform(110, 140)), int(rng.uniform(90, 110)), int(rng.uniform(65, 80)))
        draw.line((x - half, y - tilt, x + half, y + tilt), fill=wood, width=int(0.025 * size))
    if rng.random() < 0.25:  # a post
        x = rng.uniform(0.05, 0.95) * size
        width = rng.uniform(0.02, 0.05) * size
        top = rng.uniform(0.2, 0.6) * size
        wood = (int(rng.uniform(90, 120)), int(rng.uniform(75, 95)), int(rng.uniform(55, 70)))
        draw.rectangle((x, top, x + width, size), fill=wood)
