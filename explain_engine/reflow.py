"""The SAG and XNN figures as parts a web page lays out itself, so that they reflow.

A stored SAG or XNN figure is one wide PNG: on a phone it shrinks until its text is a few
pixels high. Here the same figure becomes its pictures (PNG bytes, for ``data:`` URIs) and
its numbers and words, which a page arranges in rows on a wide screen and in one column on
a narrow one, with text at the page's own size.

- `sag_parts`: one card per SAG node, layer by layer (roots first), each with the node's
  picture (`render.sag_node_tile`: its patches shown, the patch its parents removed
  outlined in red), its confidence and the boxes it comes from.
- `xnn_parts`: one row per concept, its heatmap and prototype tiles cut out of the stored
  panel (`render.xnn_panel_layout`), and its contribution as a number and a bar length.
  Without `prototypes` (a condition that hides the AI's answer: the prototypes are training
  photos of the answer's class, see `captions`), no prototype tile is cut.

The words are the declared ones (`captions`), passed in by the caller, which knows what
the condition reveals. Pure PIL / NumPy: never imports Django or PyTorch.
"""

from __future__ import annotations

import base64
import dataclasses
import io
from collections.abc import Mapping
from typing import Any

from PIL import Image

from explain_engine.captions import FigureCaptions
from explain_engine.render import (
    absent_concept_square,
    contribution_label,
    sag_layout,
    sag_node_tile,
    xnn_panel_layout,
)

__all__ = ["SAGCard", "SAGParts", "XNNConceptRow", "XNNParts", "sag_parts", "xnn_parts"]

#: Side of a SAG card's picture in pixels (shown at up to this many CSS px).
SAG_CARD_SIZE = 160


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI, for an ``<img src>`` under a policy allowing ``data:``."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@dataclasses.dataclass(frozen=True)
class SAGCard:
    """One SAG node as a card.

    Attributes:
        name: its number in reading order ("1", "2", ...), to refer to it in words.
        confidence: the AI's confidence, in % of its confidence on the whole image.
        shade: "high" (> 90), "mid" (> 50) or "low", the figure's three label colours.
        is_root: a minimal sufficient explanation (drawn with a thick border).
        parents: the names of the cards it is one patch smaller than.
        png: its picture. title, relation: its declared words.
    """

    name: str
    confidence: float
    shade: str
    is_root: bool
    parents: tuple[str, ...]
    png: bytes
    title: str  # "Box 3"
    relation: str  # "= box 1 without the part in red"; empty for a root

    @property
    def label(self) -> str:
        return f"{self.confidence:.0f}%"

    @property
    def src(self) -> str:
        return data_uri(self.png)


@dataclasses.dataclass(frozen=True)
class SAGParts:
    words: FigureCaptions
    layers: tuple[tuple[SAGCard, ...], ...]


def sag_parts(
    image: Image.Image,
    graph: Mapping[str, Any],
    words: FigureCaptions,
    *,
    size: int = SAG_CARD_SIZE,
) -> SAGParts:
    """A SAG (its stored ``to_dict()``) of `image` as cards, layer by layer, in the order
    `render.sag_layout` draws them."""
    grid = int(graph["grid"])
    nodes = {int(node["id"]): node for node in graph["nodes"]}
    _, rows, _ = sag_layout(graph, area_left=0, area_width=10**6)  # one row per layer
    order = [n for row in rows for n in row]
    name = {n: str(position + 1) for position, n in enumerate(order)}
    parents: dict[int, list[int]] = {}
    removed: dict[int, list[tuple[int, float]]] = {}
    for edge in graph["edges"]:
        child = int(edge["child"])
        parents.setdefault(child, []).append(int(edge["parent"]))
        removed.setdefault(child, []).append((int(edge["removed"]), float(edge["drop"])))
    drawn = words.drawn
    layers = []
    for row in rows:
        cards = []
        for n in row:
            node = nodes[n]
            confidence = float(node["confidence"])
            tile = sag_node_tile(image, node["patches"], removed.get(n, []), grid, size)
            from_ = tuple(name[p] for p in sorted(parents.get(n, []), key=order.index))
            cards.append(
                SAGCard(
                    name=name[n],
                    confidence=confidence,
                    shade="high" if confidence > 90 else "mid" if confidence > 50 else "low",
                    is_root=bool(node["is_root"]),
                    parents=from_,
                    png=_png(tile),
                    title=f"{drawn['box'][0]} {name[n]}",
                    relation=(
                        drawn["child"][0].format(parents=drawn["or"][0].join(from_))
                        if from_
                        else ""
                    ),
                )
            )
        layers.append(tuple(cards))
    return SAGParts(words=words, layers=tuple(layers))


@dataclasses.dataclass(frozen=True)
class XNNConceptRow:
    """One concept: its number, its contribution to the explained class's score, the
    bar's share of the largest |contribution| (0 to 1), its heatmap (the faded photo where
    the photo does not hold the concept: ``present`` False, see `render.xnn_concept_panel`)
    and prototypes."""

    number: int
    contribution: float
    bar_share: float
    heatmap_png: bytes
    prototype_pngs: tuple[bytes, ...]
    present: bool = True

    @property
    def label(self) -> str:
        return contribution_label(self.contribution)

    @property
    def sign(self) -> str:
        return "positive" if self.contribution > 0 else "negative" if self.contribution else "zero"

    @property
    def heatmap_src(self) -> str:
        return data_uri(self.heatmap_png)

    @property
    def prototype_srcs(self) -> list[str]:
        return [data_uri(png) for png in self.prototype_pngs]

    @property
    def bar_width(self) -> float:
        """The bar's length in a 200-unit track whose zero is its middle."""
        return round(100.0 * self.bar_share, 2)

    @property
    def bar_x(self) -> float:
        return 100.0 if self.contribution >= 0 else round(100.0 - self.bar_width, 2)


@dataclasses.dataclass(frozen=True)
class XNNParts:
    words: FigureCaptions
    total: float
    concepts: tuple[XNNConceptRow, ...]
    shows_prototypes: bool = True

    @property
    def total_label(self) -> str:
        return f"{self.words.drawn['sum'][0]} {contribution_label(self.total)}"

    @property
    def title(self) -> str:
        return self.words.drawn["title"][0]

    @property
    def holds_no_concept(self) -> bool:
        """The photo holds none of the model's concepts: every contribution is 0 and the
        rebuilt score is the model's bias alone, so the rows explain nothing, and the page
        says so (a one-vs-all model can spend all its concepts on other species)."""
        return not any(row.present for row in self.concepts)


def xnn_parts(
    panel_png: bytes, data: Mapping[str, Any], words: FigureCaptions, *, prototypes: bool = True
) -> XNNParts:
    """An XNN explanation as concept rows: the numbers from its stored data (see
    `render.xnn_concept_item`), the pictures cut out of its stored panel; the prototypes
    only with `prototypes`."""
    column = list(data["classes"]).index(data["target_class"])
    concepts = data["concepts"]
    values = [float(concept["contributions"][column]) for concept in concepts]
    n_protos = max((len(concept["prototype_ids"]) for concept in concepts), default=1)
    layout = xnn_panel_layout(len(concepts), n_protos)
    scale = max((abs(value) for value in values), default=0.0)
    with Image.open(io.BytesIO(panel_png)) as opened:
        panel = opened.convert("RGB")
    if panel.size != (layout.width, layout.height):
        raise ValueError(
            f"the panel is {panel.size[0]}x{panel.size[1]} px, not the "
            f"{layout.width}x{layout.height} of {len(concepts)} concepts"
        )

    def cut(box: tuple[int, int, int]) -> bytes:
        left, top, side = box
        return _png(panel.crop((left, top, left + side, top + side)))

    left, top, side = layout.hero
    photo = panel.crop((left, top, left + side, top + side))
    present = [float(concept["activation"]) > 0 for concept in concepts]

    def square(j: int) -> bytes:
        # Drawn here from the panel's photo, not cut: a panel stored before absent concepts
        # were drawn faded holds a heatmap there.
        if present[j]:
            return cut(layout.heatmaps[j])
        thumb = layout.heatmaps[j][2]
        return _png(absent_concept_square(photo, thumb, words.drawn["absent"]))

    rows = tuple(
        XNNConceptRow(
            number=j + 1,
            contribution=values[j],
            bar_share=abs(values[j]) / scale if scale > 0 else 0.0,
            heatmap_png=square(j),
            present=present[j],
            prototype_pngs=tuple(
                cut(layout.prototypes[j][p]) for p in range(len(concepts[j]["prototype_ids"]))
            )
            if prototypes
            else (),
        )
        for j in range(len(concepts))
    )
    return XNNParts(words=words, total=sum(values), concepts=rows, shows_prototypes=prototypes)
