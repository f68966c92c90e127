"""Image sets: importing a CUB-layout data set as stimuli, and reading a stored image as the
classifier's input tensor."""

import hashlib
import io
from pathlib import Path

import PIL
import PIL.Image
import torch
from django.core.files.base import ContentFile
from django.db import transaction

from explain_engine import classifiers
from explain_engine.datasets.cub import display_name, read_cub
from explain_engine.models import (
    ClassLabel,
    Image,
    ImageSet,
)

STIMULUS_JPEG_QUALITY = 95

# What a damaged or unreadable image file raises when it is opened and decoded.
UNREADABLE_IMAGE_ERRORS = (PIL.UnidentifiedImageError, OSError, SyntaxError)


def _stimulus_bytes(path: Path) -> tuple[bytes, int, int]:
    """Re-encode an image as a baseline JPEG without metadata (EXIF can hold GPS, camera
    and original file names)."""
    with PIL.Image.open(path) as source:
        source.load()
        rgb = source.convert("RGB")
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=STIMULUS_JPEG_QUALITY)
    return buffer.getvalue(), rgb.width, rgb.height


def image_set_import_cub(*, root: Path, name: str, classes: list[str] | None = None) -> ImageSet:
    """Import a CUB-200-2011-layout data set; a second import of the same set adds only what
    is missing."""
    dataset = read_cub(Path(root), classes=classes)
    image_set, _ = ImageSet.objects.get_or_create(
        name=name, defaults={"source_path": str(Path(root).resolve())}
    )
    present = {image.class_name for image in dataset.images}
    labels = {}
    with transaction.atomic():
        # Positions follow classes.txt, so importing more classes later keeps earlier ones.
        for position, source_name in enumerate(dataset.class_names):
            if source_name not in present:
                continue
            label, _ = ClassLabel.objects.get_or_create(
                image_set=image_set,
                source_name=source_name,
                defaults={"display_name": display_name(source_name), "position": position},
            )
            labels[source_name] = label

    existing = set(image_set.images.values_list("source_id", flat=True))
    for cub_image in dataset.images:
        if cub_image.image_id in existing:
            continue
        data, width, height = _stimulus_bytes(dataset.image_path(cub_image))
        image = Image(
            image_set=image_set,
            class_label=labels[cub_image.class_name],
            split=Image.Split.TRAIN if cub_image.is_train else Image.Split.TEST,
            source_id=cub_image.image_id,
            source_path=cub_image.relative_path,
            sha256=hashlib.sha256(data).hexdigest(),
            width=width,
            height=height,
            bbox=list(cub_image.bbox) if cub_image.bbox else None,
            parts={part: list(xy) for part, xy in cub_image.parts.items()},
        )
        # The name given here is discarded by the opaque upload_to; only the suffix is kept.
        image.file.save("stimulus.jpg", ContentFile(data), save=False)
        image.save()
    return image_set


def image_tensor(image: Image, preprocessing: classifiers.Preprocessing) -> torch.Tensor:
    with image.file.open("rb") as handle, PIL.Image.open(handle) as pil:
        return preprocessing.to_tensor(pil)
