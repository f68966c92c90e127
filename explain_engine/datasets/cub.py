"""Reader for the CUB-200-2011 folder layout.

Reads the real CUB-200-2011 (200 classes, 11,788 images) and anything written in its
layout, such as the synthetic gulls:

    images.txt               <image_id> <path relative to images/>
    classes.txt              <class_id> <NNN.Class_Name>
    image_class_labels.txt   <image_id> <class_id>
    train_test_split.txt     <image_id> <1 if train else 0>
    bounding_boxes.txt       <image_id> <x> <y> <width> <height>      (optional)
    parts/parts.txt          <part_id> <part name>                    (optional)
    parts/part_locs.txt      <image_id> <part_id> <x> <y> <visible>   (optional)

Malformed input raises CubFormatError naming the file and the line, so that a researcher
importing a damaged copy learns where to look.

Example:

    dataset = read_cub(Path("CUB_200_2011"), classes=["California Gull", "Herring_Gull"])
    for image in dataset.images:
        print(dataset.image_path(image), display_name(image.class_name), image.is_train)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class CubFormatError(ValueError):
    """The folder does not follow the CUB-200-2011 layout; the message says where."""


@dataclass(frozen=True)
class CubImage:
    image_id: int
    relative_path: str  # relative to the images/ folder, as written in images.txt
    class_name: str  # the folder-style name, e.g. "059.California_Gull"
    is_train: bool
    bbox: tuple[float, float, float, float] | None  # x, y, width, height; None if no file
    parts: dict[str, tuple[float, float]]  # visible parts only: name -> (x, y)


@dataclass(frozen=True)
class CubDataset:
    root: Path
    class_names: list[str]  # folder-style names, in classes.txt order
    images: list[CubImage]  # in images.txt order

    def image_path(self, image: CubImage) -> Path:
        return self.root / "images" / image.relative_path

    def labelled_items(self) -> tuple[list[tuple[Path, int]], list[tuple[Path, int]]]:
        """(train, test) lists of (image path, class index in `class_names` order)."""
        index = {name: i for i, name in enumerate(self.class_names)}
        train: list[tuple[Path, int]] = []
        test: list[tuple[Path, int]] = []
        for image in self.images:
            item = (self.image_path(image), index[image.class_name])
            (train if image.is_train else test).append(item)
        return train, test


_CLASS_NUMBER_PREFIX = re.compile(r"^\d+\.")


#: CUB-200-2011's class names write hyphens and apostrophes as underscores (or drop them):
#: the names people know, by the class name without its number. Every other class reads
#: right with its underscores as spaces. "Artic" is CUB's misspelling of Arctic.
CUB_DISPLAY_NAMES: dict[str, str] = {
    "Black_footed_Albatross": "Black-footed Albatross",
    "Groove_billed_Ani": "Groove-billed Ani",
    "Brewer_Blackbird": "Brewer's Blackbird",
    "Red_winged_Blackbird": "Red-winged Blackbird",
    "Yellow_headed_Blackbird": "Yellow-headed Blackbird",
    "Yellow_breasted_Chat": "Yellow-breasted Chat",
    "Chuck_will_Widow": "Chuck-will's-widow",
    "Brandt_Cormorant": "Brandt's Cormorant",
    "Red_faced_Cormorant": "Red-faced Cormorant",
    "Black_billed_Cuckoo": "Black-billed Cuckoo",
    "Yellow_billed_Cuckoo": "Yellow-billed Cuckoo",
    "Gray_crowned_Rosy_Finch": "Gray-crowned Rosy-Finch",
    "Olive_sided_Flycatcher": "Olive-sided Flycatcher",
    "Scissor_tailed_Flycatcher": "Scissor-tailed Flycatcher",
    "Yellow_bellied_Flycatcher": "Yellow-bellied Flycatcher",
    "Boat_tailed_Grackle": "Boat-tailed Grackle",
    "Pied_billed_Grebe": "Pied-billed Grebe",
    "Rose_breasted_Grosbeak": "Rose-breasted Grosbeak",
    "Glaucous_winged_Gull": "Glaucous-winged Gull",
    "Heermann_Gull": "Heermann's Gull",
    "Ring_billed_Gull": "Ring-billed Gull",
    "Slaty_backed_Gull": "Slaty-backed Gull",
    "Anna_Hummingbird": "Anna's Hummingbird",
    "Ruby_throated_Hummingbird": "Ruby-throated Hummingbird",
    "Long_tailed_Jaeger": "Long-tailed Jaeger",
    "Dark_eyed_Junco": "Dark-eyed Junco",
    "White_breasted_Kingfisher": "White-breasted Kingfisher",
    "Red_legged_Kittiwake": "Red-legged Kittiwake",
    "Red_breasted_Merganser": "Red-breasted Merganser",
    "Clark_Nutcracker": "Clark's Nutcracker",
    "White_breasted_Nuthatch": "White-breasted Nuthatch",
    "Scott_Oriole": "Scott's Oriole",
    "Western_Wood_Pewee": "Western Wood-Pewee",
    "Whip_poor_Will": "Whip-poor-will",
    "White_necked_Raven": "White-necked Raven",
    "Baird_Sparrow": "Baird's Sparrow",
    "Black_throated_Sparrow": "Black-throated Sparrow",
    "Brewer_Sparrow": "Brewer's Sparrow",
    "Clay_colored_Sparrow": "Clay-colored Sparrow",
    "Harris_Sparrow": "Harris's Sparrow",
    "Henslow_Sparrow": "Henslow's Sparrow",
    "Le_Conte_Sparrow": "Le Conte's Sparrow",
    "Lincoln_Sparrow": "Lincoln's Sparrow",
    "Nelson_Sharp_tailed_Sparrow": "Nelson's Sharp-tailed Sparrow",
    "White_crowned_Sparrow": "White-crowned Sparrow",
    "White_throated_Sparrow": "White-throated Sparrow",
    "Artic_Tern": "Arctic Tern",
    "Forsters_Tern": "Forster's Tern",
    "Green_tailed_Towhee": "Green-tailed Towhee",
    "Black_capped_Vireo": "Black-capped Vireo",
    "Blue_headed_Vireo": "Blue-headed Vireo",
    "Red_eyed_Vireo": "Red-eyed Vireo",
    "White_eyed_Vireo": "White-eyed Vireo",
    "Yellow_throated_Vireo": "Yellow-throated Vireo",
    "Bay_breasted_Warbler": "Bay-breasted Warbler",
    "Black_and_white_Warbler": "Black-and-white Warbler",
    "Black_throated_Blue_Warbler": "Black-throated Blue Warbler",
    "Blue_winged_Warbler": "Blue-winged Warbler",
    "Chestnut_sided_Warbler": "Chestnut-sided Warbler",
    "Golden_winged_Warbler": "Golden-winged Warbler",
    "Orange_crowned_Warbler": "Orange-crowned Warbler",
    "Swainson_Warbler": "Swainson's Warbler",
    "Wilson_Warbler": "Wilson's Warbler",
    "Worm_eating_Warbler": "Worm-eating Warbler",
    "American_Three_toed_Woodpecker": "American Three-toed Woodpecker",
    "Red_bellied_Woodpecker": "Red-bellied Woodpecker",
    "Red_cockaded_Woodpecker": "Red-cockaded Woodpecker",
    "Red_headed_Woodpecker": "Red-headed Woodpecker",
    "Bewick_Wren": "Bewick's Wren",
}


def display_name(class_name: str) -> str:
    """The name to show people, with CUB's hyphens and apostrophes (`CUB_DISPLAY_NAMES`):
    "059.California_Gull" -> "California Gull", "061.Heermann_Gull" -> "Heermann's Gull"."""
    bare = _CLASS_NUMBER_PREFIX.sub("", class_name.strip())
    return CUB_DISPLAY_NAMES.get(bare, bare.replace("_", " "))


def read_cub(root: Path, *, classes: list[str] | None = None) -> CubDataset:
    """Read a CUB-layout folder, keeping only the given classes if `classes` is given.

    A class may be named as "059.California_Gull", "California_Gull" or "California Gull",
    in any letter case. Image files are checked to exist for the images returned only, so a
    copy that holds just the wanted classes' images can still be read with `classes`.
    """
    root = Path(root)
    image_paths = _read_image_paths(root / "images.txt")
    class_names_by_id = _read_class_names(root / "classes.txt")
    class_ids = _read_per_image(
        root / "image_class_labels.txt", image_paths, "<image_id> <class_id>", _parse_class_id
    )
    is_train = _read_per_image(
        root / "train_test_split.txt", image_paths, "<image_id> <1 or 0>", _parse_train_flag
    )
    bboxes_path = root / "bounding_boxes.txt"
    bboxes = (
        _read_per_image(
            bboxes_path, image_paths, "<image_id> <x> <y> <width> <height>", _parse_bbox
        )
        if bboxes_path.exists()
        else None
    )
    parts = _read_parts(root, image_paths)

    # Every label must name a known class, for all images, not only the wanted ones. A second
    # pass over the file, to report the line number.
    labels_path = root / "image_class_labels.txt"
    for line_number, fields in _data_lines(labels_path):
        if int(fields[1]) not in class_names_by_id:
            raise CubFormatError(
                f"{labels_path}, line {line_number}: class id {fields[1]} is not in classes.txt"
            )

    all_class_names = list(class_names_by_id.values())
    wanted = set(all_class_names) if classes is None else _resolve_classes(classes, all_class_names)

    images: list[CubImage] = []
    for image_id, (relative_path, line_number) in image_paths.items():
        class_name = class_names_by_id[class_ids[image_id]]
        if class_name not in wanted:
            continue
        if not (root / "images" / relative_path).is_file():
            raise CubFormatError(
                f"{root / 'images.txt'}, line {line_number}: image file "
                f"{root / 'images' / relative_path} does not exist"
            )
        images.append(
            CubImage(
                image_id=image_id,
                relative_path=relative_path,
                class_name=class_name,
                is_train=is_train[image_id],
                bbox=None if bboxes is None else bboxes[image_id],
                parts=parts.get(image_id, {}),
            )
        )
    return CubDataset(
        root=root,
        class_names=[name for name in all_class_names if name in wanted],
        images=images,
    )


def _data_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, whitespace-separated fields) for each non-blank line of a file."""
    if not path.is_file():
        raise CubFormatError(f"{path}: required file is missing")
    with open(path, encoding="utf-8") as file:
        for line_number, line in enumerate(file, start=1):
            if line.strip():
                yield line_number, line.split()


def _parse_zero_one(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError(text)
    return text == "1"


def _parse_class_id(fields: list[str]) -> int:
    return int(fields[0])


def _parse_train_flag(fields: list[str]) -> bool:
    return _parse_zero_one(fields[0])


def _read_image_paths(path: Path) -> dict[int, tuple[str, int]]:
    """image id -> (relative path, line number in images.txt)."""
    image_paths: dict[int, tuple[str, int]] = {}
    for line_number, fields in _data_lines(path):
        if len(fields) != 2 or not fields[0].isdigit():
            raise CubFormatError(
                f"{path}, line {line_number}: expected '<image_id> <relative path>', "
                f"got {' '.join(fields)!r}"
            )
        image_id = int(fields[0])
        if image_id in image_paths:
            raise CubFormatError(f"{path}, line {line_number}: image id {image_id} repeated")
        image_paths[image_id] = (fields[1], line_number)
    return image_paths


def _read_class_names(path: Path) -> dict[int, str]:
    class_names: dict[int, str] = {}
    for line_number, fields in _data_lines(path):
        if len(fields) != 2 or not fields[0].isdigit():
            raise CubFormatError(
                f"{path}, line {line_number}: expected '<class_id> <NNN.Class_Name>', "
                f"got {' '.join(fields)!r}"
            )
        class_id = int(fields[0])
        if class_id in class_names:
            raise CubFormatError(f"{path}, line {line_number}: class id {class_id} repeated")
        class_names[class_id] = fields[1]
    return class_names


def _read_per_image(
    path: Path,
    image_paths: dict[int, tuple[str, int]],
    expected: str,
    parse_value: Callable[[list[str]], T],
) -> dict[int, T]:
    """A file with one line per image: the image id, then fields that `parse_value` turns
    into the value (raising ValueError if it cannot). Every id of images.txt must have
    exactly one line, and no other id may appear."""
    field_count = len(expected.split("> <"))
    values: dict[int, T] = {}
    for line_number, fields in _data_lines(path):
        try:
            if len(fields) != field_count:
                raise ValueError(fields)
            image_id = int(fields[0])
            value = parse_value(fields[1:])
        except ValueError:
            raise CubFormatError(
                f"{path}, line {line_number}: expected '{expected}', got {' '.join(fields)!r}"
            ) from None
        if image_id not in image_paths:
            raise CubFormatError(
                f"{path}, line {line_number}: image id {image_id} is not in images.txt"
            )
        if image_id in values:
            raise CubFormatError(f"{path}, line {line_number}: image id {image_id} repeated")
        values[image_id] = value
    for image_id, (_, line_number) in image_paths.items():
        if image_id not in values:
            raise CubFormatError(
                f"{path.parent / 'images.txt'}, line {line_number}: image id {image_id} "
                f"has no line in {path.name}"
            )
    return values


def _parse_bbox(fields: list[str]) -> tuple[float, float, float, float]:
    x, y, width, height = (float(field) for field in fields)
    return (x, y, width, height)


def _read_parts(
    root: Path, image_paths: dict[int, tuple[str, int]]
) -> dict[int, dict[str, tuple[float, float]]]:
    """image id -> {part name: (x, y)} for visible parts; empty if the parts are absent."""
    locations_path = root / "parts" / "part_locs.txt"
    if not locations_path.exists():
        return {}
    names_path = root / "parts" / "parts.txt"
    part_names: dict[int, str] = {}
    for line_number, fields in _data_lines(names_path):
        if len(fields) < 2 or not fields[0].isdigit():
            raise CubFormatError(
                f"{names_path}, line {line_number}: expected '<part_id> <part name>', "
                f"got {' '.join(fields)!r}"
            )
        part_names[int(fields[0])] = " ".join(fields[1:])

    parts: dict[int, dict[str, tuple[float, float]]] = {}
    for line_number, fields in _data_lines(locations_path):
        try:
            if len(fields) != 5:
                raise ValueError(fields)
            image_id, part_id = int(fields[0]), int(fields[1])
            x, y = float(fields[2]), float(fields[3])
            visible = _parse_zero_one(fields[4])
        except ValueError:
            raise CubFormatError(
                f"{locations_path}, line {line_number}: expected "
                f"'<image_id> <part_id> <x> <y> <visible 0 or 1>', got {' '.join(fields)!r}"
            ) from None
        if image_id not in image_paths:
            raise CubFormatError(
                f"{locations_path}, line {line_number}: image id {image_id} is not in images.txt"
            )
        if part_id not in part_names:
            raise CubFormatError(
                f"{locations_path}, line {line_number}: part id {part_id} is not in parts.txt"
            )
        if visible:
            parts.setdefault(image_id, {})[part_names[part_id]] = (x, y)
    return parts


def _class_key(name: str) -> str:
    """What two spellings of one class share: no number, no underscores, lower case."""
    bare = _CLASS_NUMBER_PREFIX.sub("", name.strip())
    return " ".join(bare.replace("_", " ").lower().split())


def _resolve_classes(requested: list[str], class_names: list[str]) -> set[str]:
    by_full_name = {name.lower(): name for name in class_names}
    # A class may be asked for by its folder name or by the name people know.
    by_key = {_class_key(display_name(name)): name for name in class_names}
    by_key.update({_class_key(name): name for name in class_names})
    resolved = set()
    for entry in requested:
        cleaned = entry.strip()
        if cleaned.lower() in by_full_name:
            resolved.add(by_full_name[cleaned.lower()])
        elif not _CLASS_NUMBER_PREFIX.match(cleaned) and _class_key(cleaned) in by_key:
            # A numbered name must match exactly: "060.California_Gull" is a mistake.
            resolved.add(by_key[_class_key(cleaned)])
        else:
            examples = ", ".join(class_names[:5])
            raise CubFormatError(
                f"unknown class {entry!r}; valid names look like {examples}"
                + (" ..." if len(class_names) > 5 else "")
            )
    return resolved
