"""A precompute job's explanations scored against the synthetic gulls' ground truth.

The synthetic gulls' generator writes ``ground_truth.json`` (where each image's field marks
are, which sets of marks decide the species); `explain_engine.ground_truth` scores one
explanation against it. This reads the job's finished explanations back from storage (the
saliency maps, SAG graphs and XNN concept maps participants' figures were drawn from),
scores them per method, on the photos the classifier answers correctly and on all, and
stores the summaries and issue 16's goals on the job.
"""

import io
from pathlib import Path

import numpy as np
import torch
from django.db.models import F

from explain_engine import ground_truth as gt
from explain_engine.datasets.synthetic_birds import MARK_PARTS, read_ground_truth
from explain_engine.methods import SAGGraph, get_method
from explain_engine.models import ConceptModel, Explanation, PrecomputeJob, Prediction
from explain_engine.services.errors import EngineInputError


def _array(field) -> np.ndarray:
    with field.open("rb") as stream:
        return np.load(io.BytesIO(stream.read()), allow_pickle=False)


def precompute_job_ground_truth(*, job: PrecomputeJob, truth_root: Path) -> dict:
    """Score the job's finished explanations against ``truth_root/ground_truth.json`` and
    store the report on the job (``job.ground_truth``).

    The goals are scored on the photos the classifier answers correctly: where it errs (the
    demo's distant, hazy gulls), it did not decide from the marks of the species it named, so
    a faithful explanation need not point at them. A photo without a stored prediction
    counts as not answered correctly. The report: ``images`` (scored photos),
    ``images_right`` (those answered correctly); on those, ``saliency`` (method ->
    `ground_truth.saliency_summary`), ``sag`` and ``xnn`` (None when the job has none) and
    ``goals`` ([goal, holds, figure] rows), which are ``{}``, None, None and ``[]`` when no
    photo is answered correctly; and ``all_photos``, the same four on every photo.
    """
    try:
        truth = read_ground_truth(truth_root)
    except (OSError, KeyError, ValueError) as error:
        raise EngineInputError(f"no readable ground truth in {truth_root}: {error}") from error
    hashes = {get_method(spec["method"], **spec["params"]).params_hash() for spec in job.methods}
    rows = [
        row
        for row in Explanation.objects.filter(
            classifier=job.classifier,
            image_id__in=job.image_ids,
            params_hash__in=hashes,
            status=Explanation.Status.DONE,
        )
        .select_related("image")
        .order_by("method", "image__source_id")
        if row.image.source_id in truth.mark_boxes  # else not one of the generated images
    ]
    right = set(
        Prediction.objects.filter(
            classifier=job.classifier,
            image_id__in=job.image_ids,
            predicted_label_id=F("image__class_label_id"),
        ).values_list("image_id", flat=True)
    )
    # each stored map is read once, then scored on both sets of photos
    maps = {row.pk: torch.from_numpy(_array(row.raw_map)) for row in rows if row.method != "sag"}
    on_right = _scores(job, truth, [row for row in rows if row.image_id in right], maps)
    report = {
        "images": len({row.image_id for row in rows}),
        "images_right": len({row.image_id for row in rows if row.image_id in right}),
        **on_right,
        "all_photos": _scores(job, truth, rows, maps),
    }
    job.ground_truth = report
    job.save(update_fields=["ground_truth"])
    return report


def _scores(
    job: PrecomputeJob, truth, rows: list[Explanation], stored: dict[int, torch.Tensor]
) -> dict:
    """``saliency``, ``sag``, ``xnn`` and ``goals`` of these explanation rows; `stored`
    holds each non-SAG row's raw map by row id."""
    size = job.classifier.input_size
    maps: dict[str, list] = {}
    sag_searches, sag_marks, sag_sets, sag_grid = [], [], [], None
    class_order = job.classifier.class_order
    xnn_maps, xnn_parts, xnn_models, xnn_present, concept_model_ids = [], [], [], [], set()
    for row in rows:
        boxes = truth.mark_boxes[row.image.source_id]
        if row.method == "sag":
            graph = SAGGraph.from_dict(row.data)
            sag_grid = int(row.params["grid"])
            sag_searches.append(([m.patches for m in graph.mses], len(graph.roots)))
            sag_marks.append(gt.scaled_boxes(boxes, truth.image_size, size))
            sag_sets.append(
                truth.sufficient_sets_by_species.get(
                    class_order[row.target_index], truth.minimal_sufficient_sets
                )
            )
        elif row.method == "xnn":
            heatmaps = stored[row.pk]
            xnn_maps.append(heatmaps)
            xnn_present.append([c["activation"] > 0 for c in row.data["concepts"]])
            xnn_parts.append(
                gt.part_boxes(
                    boxes, row.image.parts, MARK_PARTS, truth.image_size, heatmaps.shape[-1]
                )
            )
            # per-class XNN: each explained class has its own concepts
            per_class = row.params.get("mode") == "per_class"
            xnn_models.append(class_order[row.target_index] if per_class else "shared")
            concept_model_ids.add(row.data.get("concept_model_id"))
        else:
            saliency = stored[row.pk]
            scaled = gt.scaled_boxes(boxes, truth.image_size, saliency.shape[-1])
            maps.setdefault(row.method, []).append((saliency, scaled))

    def tolerance(pixels: int) -> float:
        return gt.POINTING_TOLERANCE_AT_224 * pixels / 224

    saliency = {
        slug: gt.saliency_summary(
            torch.stack([m for m, _ in items]),
            [b for _, b in items],
            tolerance=tolerance(items[0][0].shape[-1]),
        )
        for slug, items in maps.items()
    }
    sag = (
        gt.sag_summary(sag_searches, sag_marks, sag_sets, grid=sag_grid, size=size)
        if sag_searches
        else None
    )
    xnn = None
    if xnn_maps:
        r2s = list(
            ConceptModel.objects.filter(pk__in=concept_model_ids).values_list("r2", flat=True)
        )
        xnn = gt.xnn_summary(
            torch.stack(xnn_maps),
            xnn_parts,
            r2=min(r2s) if r2s else None,
            tolerance=tolerance(xnn_maps[0].shape[-1]),
            models=xnn_models,
            present=torch.tensor(xnn_present, dtype=torch.bool),
        )
    return {
        "saliency": saliency,
        "sag": sag,
        "xnn": xnn,
        "goals": [list(row) for row in gt.goals(saliency=saliency, sag=sag, xnn=xnn)],
    }
