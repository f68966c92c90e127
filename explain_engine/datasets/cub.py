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


def display_name(class_name: str) -> str:
    """The name to show people: "059.California_Gull" -> "California Gull"."""
    return _CLASS_NUMBER_PREFIX.sub("", class_name.strip()).replace("_", " ")


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
    return " ".join(display_name(name).lower().split())


def _resolve_classes(requested: list[str], class_names: list[str]) -> set[str]:
    by_full_name = {name.lower(): name for name in class_names}
    by_key = {_class_key(name): name for name in class_names}
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
