"""Explanation methods behind one interface, keyed by stable slugs.

Usage::

    method = get_method("gradcam", batch_size=16)
    result = method.explain(model, images)  # result.saliency: (B, H, W) in [0, 1]
    sag = get_method("sag", beam_width=5)
    graphs = sag.explain(model, images).graphs  # one SAGGraph per image
    record = {"method": method.slug, "params": method.params(), "hash": method.params_hash()}

A class with ``needs_fit = True`` (XNN) is fitted before it explains: `get_method` returns it
unfitted, which is enough to check and hash its parameters (a study condition, a precompute
plan), and its ``explain`` raises RuntimeError until it is fitted (``fit``) or a saved
concept model is loaded in its place (``XNN.load``). Code that explains straight away picks
the saliency methods: ``[slug for slug, cls in REGISTRY.items() if not cls.needs_fit]``.

Pure PyTorch; never imports Django.
"""

from __future__ import annotations

import inspect
from typing import Any

from .base import ExplanationMethod, SaliencyMethod, SaliencyResult
from .gradcam import GradCAM
from .igos import IGOS, IGOSPlusPlus
from .integrated_gradients import IntegratedGradients
from .sag import SAG, SAGGraph, SAGResult
from .xnn import XNN

__all__ = [
    "REGISTRY",
    "IGOS",
    "SAG",
    "ExplanationMethod",
    "GradCAM",
    "IGOSPlusPlus",
    "IntegratedGradients",
    "SAGGraph",
    "SAGResult",
    "SaliencyMethod",
    "SaliencyResult",
    "XNN",
    "get_method",
]

REGISTRY: dict[str, type[ExplanationMethod]] = {
    cls.slug: cls for cls in (GradCAM, IGOS, IGOSPlusPlus, IntegratedGradients, SAG, XNN)
}


def get_method(slug: str, /, **params: Any) -> ExplanationMethod:
    """Construct the method registered under `slug` with keyword `params` (XNN: unfitted).

    Raises:
        ValueError: for an unknown slug (the message lists the known ones), an unknown
            parameter (the message lists the method's parameters) or an invalid value.
    """
    try:
        cls = REGISTRY[slug]
    except KeyError:
        raise ValueError(
            f"unknown explanation method {slug!r}; known: {', '.join(sorted(REGISTRY))}"
        ) from None
    known = list(inspect.signature(cls).parameters)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for method {slug!r}; "
            f"its parameters: {', '.join(known)}"
        )
    return cls(**params)
