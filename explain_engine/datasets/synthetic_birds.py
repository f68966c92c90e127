"""A synthetic fine-grained gull data set, written in the CUB-200-2011 layout.

Eight "gull" species named after the CUB-200-2011 gull classes. They are the 2 x 2 x 2
combinations of three small part attributes, so telling them apart takes looking at the
right parts, as with the real gulls:

- wing tip (the folded primaries past the tail): black or pale grey,
- legs: pink or yellow,
- bill: a red spot near the tip of the lower mandible, or none.

Everything else varies inside every species as nuisance: mantle shade, eye-ring colour,
body proportions, bill length, head posture, position, scale, rotation, facing direction
and the beach background. The attribute assignment is invented for this data set; only
some of it matches the real species.

Example:

    generate_synthetic_birds(Path("media/synthetic_birds"), per_class=60, seed=0)
    dataset = read_cub(Path("media/synthetic_birds"))
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

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

WING_TIP_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (25, 25, 30),
    "pale grey": (200, 204, 214),
}
LEG_COLOURS: dict[str, tuple[int, int, int]] = {
    "pink": (238, 146, 170),
    "yellow": (240, 204, 30),
}


@dataclass(frozen=True)
class Species:
    """One synthetic species: its CUB class number and name, and its three part traits."""

    cub_number: int
    name: str
    wing_tip: str  # a key of WING_TIP_COLOURS
    legs: str  # a key of LEG_COLOURS
    bill_spot: bool  # red spot near the bill tip

    @property
    def folder_name(self) -> str:
        return f"{self.cub_number:03d}.{self.name}"


# The attribute table, in class order. Class ids in classes.txt are the CUB numbers, as in
# the real CUB-200-2011 where the id always equals the folder number.
SPECIES_TABLE: tuple[Species, ...] = (
    Species(59, "California_Gull", wing_tip="black", legs="yellow", bill_spot=True),
    Species(60, "Glaucous_winged_Gull", wing_tip="pale grey", legs="pink", bill_spot=True),
    Species(61, "Heermann_Gull", wing_tip="black", legs="pink", bill_spot=False),
    Species(62, "Herring_Gull", wing_tip="black", legs="pink", bill_spot=True),
    Species(63, "Ivory_Gull", wing_tip="pale grey", legs="yellow", bill_spot=False),
    Species(64, "Ring_billed_Gull", wing_tip="black", legs="yellow", bill_spot=False),
    Species(65, "Slaty_backed_Gull", wing_tip="pale grey", legs="pink", bill_spot=False),
    Species(66, "Western_Gull", wing_tip="pale grey", legs="yellow", bill_spot=True),
)
SPECIES: tuple[str, ...] = tuple(species.name for species in SPECIES_TABLE)

JPEG_QUALITY = 92
# Drawing at twice the size and averaging down gives anti-aliased edges, which PIL's
# polygon drawing lacks; part coordinates are reported in the final image's pixels.
SUPERSAMPLING = 2

METADATA_FILES = (
    "images.txt",
    "classes.txt",
    "image_class_labels.txt",
    "train_test_split.txt",
    "bounding_boxes.txt",
    "parts/parts.txt",
    "parts/part_locs.txt",
)

Point = tuple[float, float]
Colour = tuple[int, int, int]


def generate_synthetic_birds(
    out_dir: Path,
    *,
    per_class: int,
    seed: int,
    image_size: int = 224,
    test_fraction: float = 0.3,
) -> None:
    """Draw `per_class` images of each of the 8 species into `out_dir` in the CUB layout.

    The same arguments always give byte-identical files. Image k of a class depends only on
    (seed, class, k), so a larger `per_class` adds images without changing the first ones
    (the train/test split may change). Refuses to write into a folder that already holds a
    data set.
    """
    out_dir = Path(out_dir)
    _check_arguments(out_dir, per_class, seed, image_size, test_fraction)

    image_lines: list[str] = []
    label_lines: list[str] = []
    split_lines: list[str] = []
    bbox_lines: list[str] = []
    part_loc_lines: list[str] = []
    split_rng = np.random.default_rng([seed, 1])
    image_id = 0
    for class_index, species in enumerate(SPECIES_TABLE):
        class_dir = out_dir / "images" / species.folder_name
        class_dir.mkdir(parents=True, exist_ok=True)
        is_test = _stratified_test_mask(split_rng, per_class, test_fraction)
        for k in range(per_class):
            image_id += 1
            rng = np.random.default_rng([seed, 0, class_index, k])
            drawing = _draw_image(rng, species, image_size)
            relative_path = f"{species.folder_name}/{species.name}_{k + 1:04d}.jpg"
            drawing.image.save(
                out_dir / "images" / relative_path,
                format="JPEG",
                quality=JPEG_QUALITY,
                subsampling=0,  # 4:4:4 keeps the colour of thin legs and the bill spot
            )
            image_lines.append(f"{image_id} {relative_path}")
            label_lines.append(f"{image_id} {species.cub_number}")
            split_lines.append(f"{image_id} {0 if is_test[k] else 1}")
            x, y, w, h = drawing.bbox
            bbox_lines.append(f"{image_id} {x:.1f} {y:.1f} {w:.1f} {h:.1f}")
            for part_id, part_name in enumerate(PART_NAMES, start=1):
                location = drawing.parts.get(part_name)
                if location is None:
                    part_loc_lines.append(f"{image_id} {part_id} 0.0 0.0 0")
                else:
                    part_loc_lines.append(
                        f"{image_id} {part_id} {location[0]:.1f} {location[1]:.1f} 1"
                    )

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
    left and right is near depends on the facing direction, decided later.
    """

    shapes: list[_Shape]
    parts: dict[str, Point]


@dataclass(frozen=True)
class _Drawing:
    image: Image.Image
    bbox: tuple[float, float, float, float]  # x, y, width, height in pixels
    parts: dict[str, Point]  # visible CUB parts only


def _draw_image(rng: np.random.Generator, species: Species, image_size: int) -> _Drawing:
    bird = _build_bird(rng, species)

    # Pose: the bird faces right (showing its right side) unless flipped.
    facing_left = bool(rng.random() < 0.5)
    angle = math.radians(rng.uniform(-12, 12))
    scale = rng.uniform(0.72, 1.02) * image_size / 224
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
    return _Drawing(image=image, bbox=bbox, parts=parts)


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
    eye_ring_choices: list[Colour | None] = [None, (205, 40, 40), (235, 135, 30), (225, 205, 70)]
    eye_ring = eye_ring_choices[int(rng.integers(len(eye_ring_choices)))]
    head_lift = rng.uniform(-5, 4)
    bill_length = rng.uniform(17, 22)
    leg_length = rng.uniform(26, 33)
    bill_yellow = (int(rng.uniform(225, 245)), int(rng.uniform(190, 215)), 55)

    wing_tip = WING_TIP_COLOURS[species.wing_tip]
    leg = LEG_COLOURS[species.legs]

    head_x, head_y, head_r = 38 * length, -30 * height + head_lift, 13.0
    bill_x, bill_y = head_x + head_r * 0.8, head_y + 1.5
    shapes: list[_Shape] = []
    parts: dict[str, Point] = {}

    # Legs first, so that the body hides their tops. The far leg is a shade darker.
    for side, leg_x, leg_top, colour in (
        ("far", -11 * length, 12 * height, _shade(leg, 0.88)),
        ("near", 5 * length, 15 * height, leg),
    ):
        ankle = (leg_x + 2, 16 * height + leg_length)
        shapes.append(_Shape(_thick_line((leg_x, leg_top), ankle, 5.5), colour))
        shapes.append(
            _Shape(
                [
                    (ankle[0] - 3, ankle[1] - 1.5),
                    (ankle[0] + 9, ankle[1] + 1.5),
                    (ankle[0] + 8, ankle[1] + 3.5),
                    (ankle[0] - 3, ankle[1] + 2.5),
                ],
                colour,
            )
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
    shapes.append(
        _Shape(
            [
                (tip_base_x, -15 * height),
                (tip_base_x - 30, -10 * height),
                (tip_base_x - 44, -3 * height),
                (tip_base_x - 32, 1 * height),
                (tip_base_x, 4 * height),
            ],
            wing_tip,
        )
    )
    # Small white "mirror" spots at the very tip, on both colours.
    shapes.append(_Shape(_ellipse(tip_base_x - 37, -3.5 * height, 3.2, 1.8, 20), white))
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

    # Bill: yellow, hooked at the tip, with the red spot on the lower mandible.
    bill = bill_length
    shapes.append(
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
        )
    )
    if species.bill_spot:
        shapes.append(_Shape(_ellipse(bill_x + bill * 0.72, bill_y + 2.4, 3.2, 2.6), (215, 25, 25)))
    parts["beak"] = (bill_x + bill * 0.45, bill_y)

    # Eye on the near side, with an optional coloured ring.
    eye = (head_x + head_r * 0.35, head_y - head_r * 0.22)
    if eye_ring is not None:
        shapes.append(_Shape(_ellipse(eye[0], eye[1], 3.0, 3.0), eye_ring))
    shapes.append(_Shape(_ellipse(eye[0], eye[1], 1.9, 1.9), (25, 20, 15)))
    parts["near eye"] = eye

    return _Bird(shapes=shapes, parts=parts)


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
