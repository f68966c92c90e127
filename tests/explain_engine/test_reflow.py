"""The SAG and XNN figures as parts a page lays out: the same pictures and numbers as the
stored figures, and only the declared words."""

import io

import numpy as np
from PIL import Image

from explain_engine.captions import sag_captions, xnn_captions
from explain_engine.reflow import sag_parts, xnn_parts
from explain_engine.render import (
    contribution_label,
    heatmap_overlay,
    sag_node_tile,
    xnn_concept_panel,
)

from .test_render import make_image, sag_graph


def _pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        return np.asarray(image.convert("RGB"))


def test_sag_cards_follow_the_layers_with_their_pictures_and_parents():
    image = make_image(70, 70)
    graph = sag_graph(children=3)
    graph["nodes"].append(
        {
            "id": 4,
            "patches": [2],
            "probability": 0.1,
            "confidence": 10.0,
            "is_root": False,
            "layer": 2,
        }
    )
    graph["edges"] += [
        {"parent": 2, "child": 4, "removed": 0, "drop": 40.0},
        {"parent": 3, "child": 4, "removed": 1, "drop": 75.0},
    ]
    parts = sag_parts(image, graph, sag_captions(), size=64)
    assert [[card.name for card in layer] for layer in parts.layers] == [
        ["1"],
        ["2", "3", "4"],
        ["5"],
    ]
    root, *children = parts.layers[0] + parts.layers[1]
    assert root.is_root and root.parents == () and root.label == "95%" and root.shade == "high"
    assert [card.parents for card in children] == [("1",), ("1",), ("1",)]
    assert [card.shade for card in children] == ["low", "low", "mid"]  # 5, 45, 85 %
    last = parts.layers[2][0]
    assert last.parents == ("3", "4") and last.label == "10%"
    assert (last.title, last.relation) == ("Box 5", "= box 3 or 4 without the part in red")
    expected = sag_node_tile(image, [2], [(0, 40.0), (1, 75.0)], 7, 64)
    assert np.array_equal(_pixels(last.png), np.asarray(expected))
    assert last.src.startswith("data:image/png;base64,")


def test_xnn_rows_cut_the_stored_panel_and_take_the_numbers_from_the_data():
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8))
    maps = rng.random((3, 96, 96)).astype(np.float32)
    contributions = np.array([2.0, -1.0, 0.5])
    prototypes = [
        [Image.new("RGB", (40, 40), (10 * j + p, 90, 90)) for p in range(2 + (j == 0))]
        for j in range(3)
    ]
    buffer = io.BytesIO()
    xnn_concept_panel(image, maps, contributions, prototypes, None).save(buffer, format="PNG")
    data = {
        "classes": [4, 7],
        "target_class": 7,
        "concepts": [
            {
                "activation": 1.0,
                "contributions": [0.0, float(c)],
                "prototype_ids": list(range(len(prototypes[j]))),
            }
            for j, c in enumerate(contributions)
        ],
    }
    parts = xnn_parts(buffer.getvalue(), data, xnn_captions(None))
    assert [row.label for row in parts.concepts] == ["+2.00", "-1.00", "+0.50"]
    assert [row.bar_share for row in parts.concepts] == [1.0, 0.5, 0.25]
    assert [row.sign for row in parts.concepts] == ["positive", "negative", "positive"]
    assert (parts.concepts[1].bar_x, parts.concepts[1].bar_width) == (50.0, 50.0)
    assert (parts.concepts[2].bar_x, parts.concepts[2].bar_width) == (100.0, 25.0)
    assert parts.total_label == "Sum of contributions: +1.50"
    assert [len(row.prototype_pngs) for row in parts.concepts] == [3, 2, 2]
    heatmap = heatmap_overlay(image.resize((150, 150)), maps[1], legend=False)
    assert np.array_equal(_pixels(parts.concepts[1].heatmap_png), np.asarray(heatmap))
    tile = _pixels(parts.concepts[2].prototype_pngs[1])
    assert tile.shape == (104, 104, 3) and tuple(tile[50, 50]) == (21, 90, 90)
    assert [row.present for row in parts.concepts] == [True, True, True]
    cut_before = [row.heatmap_png for row in parts.concepts]
    # A concept whose x-feature is 0 on the photo is absent from it (render.xnn_concept_panel)
    data["concepts"][1] = {**data["concepts"][1], "activation": 0.0, "contributions": [0.0, 0.0]}
    parts = xnn_parts(buffer.getvalue(), data, xnn_captions(None))
    assert [row.present for row in parts.concepts] == [True, False, True]
    assert parts.concepts[1].label == "0.00"
    # The panel was drawn with every concept's map (as one stored before absent concepts
    # were faded): the page draws concept 2's square from the panel's photo instead.
    absent = _pixels(parts.concepts[1].heatmap_png)
    assert absent.shape == (150, 150, 3)
    assert (absent.max(axis=2) - absent.min(axis=2)).max() <= 2  # grey, no heatmap colours
    assert np.array_equal(_pixels(parts.concepts[0].heatmap_png), _pixels(cut_before[0]))
    data["concepts"][1]["contributions"] = [0.0, -0.0]  # 0 x a negative weight
    assert xnn_parts(buffer.getvalue(), data, xnn_captions(None)).concepts[1].label == "0.00"
    assert contribution_label(-0.003) == "0.00" and contribution_label(0.004) == "0.00"
    assert contribution_label(-0.006) == "-0.01"
    data["concepts"] = [{**c, "contributions": [0.0, -0.0]} for c in data["concepts"]]
    assert xnn_parts(buffer.getvalue(), data, xnn_captions(None)).total_label.endswith(" 0.00")
