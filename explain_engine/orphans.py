"""Files in the engine's folders that no row points at, and removing them.

A worker killed between writing an explanation's files and storing its row, or an import
cut short, leaves files nothing references. They are found per folder (each folder belongs
to the file fields that upload into it), and only those older than a grace period are
candidates: a live worker may be between writing its files and storing them. Just before
each removal the database is asked once more, so a file a row points at is never removed.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Q
from django.utils import timezone

from explain_engine.models import (
    Classifier,
    ConceptModel,
    Explanation,
    Image,
    upload_artifact,
    upload_checkpoint,
    upload_concept_model,
    upload_image,
)

# folder -> (model, its file fields that upload there)
FILE_FOLDERS = {
    upload_artifact.folder: (Explanation, ("overlay", "raw_map", "comparison")),
    upload_image.folder: (Image, ("file",)),
    upload_checkpoint.folder: (Classifier, ("checkpoint",)),
    upload_concept_model.folder: (ConceptModel, ("file",)),
}


@dataclass(frozen=True)
class OrphanFile:
    name: str
    size: int


def _referenced(model, fields: tuple[str, ...], name: str) -> bool:
    condition = Q()
    for field in fields:
        condition |= Q(**{field: name})
    return model.objects.filter(condition).exists()


def orphan_files(*, older_than: timedelta) -> list[OrphanFile]:
    """Files no row points at, last changed longer ago than `older_than`."""
    cutoff = timezone.now() - older_than
    orphans = []
    for folder, (model, fields) in FILE_FOLDERS.items():
        storage = model._meta.get_field(fields[0]).storage
        if not storage.exists(folder):
            continue
        _, names = storage.listdir(folder)
        referenced = set()
        for field in fields:
            referenced.update(model.objects.exclude(**{field: ""}).values_list(field, flat=True))
        for file_name in sorted(names):
            name = f"{folder}/{file_name}"
            if name not in referenced and storage.get_modified_time(name) < cutoff:
                orphans.append(OrphanFile(name, storage.size(name)))
    return orphans


def orphan_files_remove(*, older_than: timedelta, dry_run: bool = False) -> list[OrphanFile]:
    """Remove the orphan files (or only list them, `dry_run`); the files removed."""
    removed = []
    for orphan in orphan_files(older_than=older_than):
        folder = orphan.name.split("/", 1)[0]
        model, fields = FILE_FOLDERS[folder]
        if _referenced(model, fields, orphan.name):  # stored since it was listed
            continue
        if not dry_run:
            model._meta.get_field(fields[0]).storage.delete(orphan.name)
        removed.append(orphan)
    return removed
