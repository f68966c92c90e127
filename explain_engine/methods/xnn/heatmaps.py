"""Concept heatmaps: (contrastive) Excitation Backprop from each x-feature through CNN + XNN.

J. Zhang, Z. Lin, J. Brandt, X. Shen, S. Sclaroff, "Top-down Neural Attention by Excitation
Backprop", ECCV 2016. The XNN paper maps each x-feature to the image this way, from the
x-feature node through the combined "CNN + XNN" network (methods.md 2.4).

Marginal winning probability (MWP). A probability P, 1 at the top node, flows down layer by
layer. Through a linear map y = W x (bias ignored) with non-negative inputs x (negative ones
count as 0), output i hands P(y_i) to its inputs in proportion to their excitation
``W+_ij x_j``::

    P(x_j) = x_j * sum_i W+_ij P(y_i) / sum_j' W+_ij' x_j'

which is computed as ``x * J^T (P / (W+ x))`` with autograd (J the Jacobian of ``x -> W+ x``),
so every linear map (convolution, depthwise or grouped, linear layer, average pooling) shares
one rule. The other rules:

- batch norm directly after a convolution or linear layer (its only user) is folded into it
  (weights scaled by gamma / sqrt(var + eps)) before taking W+; elsewhere, and every
  element-wise activation (the ReLU family, hard-swish, hard-sigmoid), dropout and identity,
  passes P through unchanged;
- max pooling hands each output's P to its winner;
- a residual sum ``a + b`` splits P(y) by the positive contributions, ``a+ / (a+ + b+)`` to
  a (half each where both are <= 0);
- a product with a broadcast gate (squeeze-and-excitation: ``scale * x``) hands all of P to
  the full-size operand x: the gate rescales x's excitation, it is not an input location;
- reshaping ops (flatten, view, reshape, concatenation, ...) move P with their elements.

Adaptation (not in the paper): an output whose excitation ``sum_j W+_ij x_j`` is 0 (it fires
through its bias alone, or has no positive weight) would drop its P; it hands P to its
receptive field uniformly instead, so the mass is conserved exactly at every cut of the
network (``tests/explain_engine/test_xnn_excitation.py`` checks it to 1e-5).

Contrastive MWP (c-MWP): from x-feature node j, P starts on its incoming weights (row j of
the XNN's last encoder layer), and P-bar on the dual node with the negated weights; both flow
to the read layer and the map is ``ReLU(sum over channels (P - P-bar))``. MWP is linear in P,
so this equals the paper's single backward pass of the difference. All 2k signals travel as
one batch.

The network is traced with ``torch.fx`` (nothing is run twice: one forward pass, recorded).
Maps are read at the deepest cut of the network (a node every path from the image to the
XNN's features goes through: a residual block's output, never inside one) whose side is at
least 1/8 of the input's (28 x 28 for a 224 input), or at a named one.

Pure PyTorch: never imports Django.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import Tensor, nn

from ..base import call_model
from ..gradcam import resolve_target_layer

__all__ = [
    "HEATMAP_METHODS",
    "ExcitationGraph",
    "concept_heatmaps",
    "excitation_backprop",
    "excitation_graph",
]

#: "cmwp" (the paper's), "mwp" (no contrast) or "gradcam" (an explicit option only).
HEATMAP_METHODS = ("cmwp", "mwp", "gradcam")

_PASS_MODULES = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Sigmoid,
    nn.Tanh,
    nn.Dropout,
    nn.Identity,
    nn.Flatten,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
)
_PASS_FUNCTIONS = {
    F.relu,
    torch.relu,
    F.relu6,
    F.hardswish,
    F.hardsigmoid,
    F.gelu,
    F.silu,
    torch.sigmoid,
    F.dropout,
}
_PASS_METHODS = {"relu", "sigmoid", "contiguous", "clone"}
_RESHAPE_FUNCTIONS = {torch.flatten, torch.reshape, torch.cat, torch.squeeze, torch.unsqueeze}
_RESHAPE_METHODS = {"flatten", "view", "reshape", "squeeze", "unsqueeze", "permute", "transpose"}
_ADD = {operator.add, operator.iadd, torch.add}
_MUL = {operator.mul, operator.imul, torch.mul}
_AVG_POOL = (nn.AvgPool2d, nn.AdaptiveAvgPool2d)


@dataclasses.dataclass
class ExcitationGraph:
    """A traced model, recorded on one batch, ready for Excitation Backprop.

    ``values`` maps each node up to ``feature`` to its output on the batch; ``feature`` is
    the node whose flattened output the XNN embeds; ``read`` the node the maps are read at.
    """

    module: fx.GraphModule
    nodes: list[fx.Node]
    values: dict[fx.Node, Any]
    feature: fx.Node
    read: fx.Node

    @property
    def read_name(self) -> str:
        """The module's name when it runs once (``layer2``'s ReLU runs twice per block: then
        the traced node's name, e.g. ``layer2_1_relu_1``)."""
        owner = _owner(self.read)
        calls = [n for n in self.module.graph.nodes if n.op == "call_module" and n.target == owner]
        return owner if owner is not None and len(calls) == 1 else self.read.name


def excitation_graph(
    model: nn.Module, images: Tensor, layer: str | None = None, read_layer: str | None = None
) -> ExcitationGraph:
    """Trace `model`, run it on `images` (no gradient) and pick the feature and read nodes.

    `layer`: the XNN's layer (None: the input of the model's last ``nn.Linear``; else the
    module whose output is embedded). `read_layer`: a module name (its last call) or traced
    node name to read the maps at; it must be a cut. None: the deepest cut of at least 1/8
    the input's side. Raises ValueError when the model cannot be traced or has no such cut.
    """
    try:
        traced = fx.symbolic_trace(model)
    except Exception as error:  # fx raises many types on untraceable control flow
        raise ValueError(
            f"Excitation Backprop needs a model torch.fx can trace ({error}); use heatmap='gradcam'"
        ) from error
    nodes = list(traced.graph.nodes)
    feature = _feature_node(traced, nodes, model, layer)
    nodes = nodes[: nodes.index(feature) + 1]
    with _no_inplace(traced), torch.no_grad():
        values = _run(traced, nodes, images)
    cuts = _cuts(nodes, feature)
    if read_layer is None:
        side = min(images.shape[-2:])
        sized = []
        smallest = side
        for node in cuts:
            value = values[node]
            if not isinstance(value, Tensor) or value.ndim != 4:
                continue
            # never a map upsampled from a smaller one (VGG's 7 x 7 average pool of 1 x 1)
            smallest = min(smallest, *value.shape[-2:])
            if (
                node.op != "placeholder"
                and 8 * smallest >= side
                and min(value.shape[-2:]) == smallest
            ):
                sized.append(node)
        if not sized:
            raise ValueError(
                "Excitation Backprop found no layer of at least 1/8 of the input's side that "
                "every path to the features crosses; pass heatmap_layer or use heatmap='gradcam'"
            )
        read = sized[-1]
    else:
        named = [n for n in nodes if n.name == read_layer or _owner(n) == read_layer]
        if not named:
            raise ValueError(f"heatmap_layer {read_layer!r} is not a layer of this model")
        read = named[-1]
        if read not in cuts:
            raise ValueError(
                f"heatmap_layer {read_layer!r} is bypassed by a residual connection: pick a "
                "layer every path to the features crosses (e.g. a block's output)"
            )
    return ExcitationGraph(traced, nodes, values, feature, read)


def excitation_backprop(
    graph: ExcitationGraph,
    p_feature: Tensor,
    record: list[tuple[str, Tensor]] | None = None,
) -> Tensor:
    """MWP at the read node (M, B, *read shape) from MWP at the features (M, B, D).

    `record`, if given, receives after each step (node name, the mass held by the frontier
    of not yet distributed nodes per signal and image, (M, B)).
    """
    feature_value = graph.values[graph.feature]
    held: dict[fx.Node, Tensor] = {
        graph.feature: p_feature.reshape(p_feature.shape[0], *feature_value.shape)
    }
    stop = graph.nodes.index(graph.read)
    for node in reversed(graph.nodes[stop + 1 :]):
        p = held.pop(node, None)
        if p is None:
            continue
        for source, share in _distribute(graph, node, p):
            held[source] = held[source] + share if source in held else share
        if record is not None:
            record.append((node.name, sum(t.flatten(2).sum(dim=2) for t in held.values())))
    unexpected = [node.name for node in held if node is not graph.read]
    if unexpected:
        raise ValueError(f"Excitation Backprop lost its path at {unexpected}")
    return held[graph.read]


def concept_heatmaps(
    model: nn.Module,
    encoder: nn.ModuleList,
    images: Tensor,
    *,
    method: str,
    layer: str | None,
    read_layer: str | None = None,
    record: list[tuple[str, Tensor]] | None = None,
) -> tuple[Tensor, str]:
    """(maps (B, k, h, w) >= 0 at the read layer, its name), one map per x-feature.

    `encoder`: the XNN's encoder layers (Linear + ReLU each; the last one's outputs are the
    x-features). `method`: "cmwp", "mwp" or "gradcam" (Grad-CAM of each x-feature at the
    last convolutional block, the option kept for comparison). The model and encoder must
    be in eval mode with frozen parameters; gradient mode must be on.
    """
    if method == "gradcam":
        return _gradcam_maps(model, encoder, images, layer)
    if method not in ("cmwp", "mwp"):
        raise ValueError(f"heatmap must be one of {HEATMAP_METHODS}; got {method!r}")
    graph = excitation_graph(model, images, layer, read_layer)
    features = graph.values[graph.feature].flatten(1)
    inputs = [features]
    with torch.no_grad():
        for layer_module in encoder[:-1]:
            inputs.append(F.relu(layer_module(inputs[-1])))
    top = encoder[-1].weight.detach()
    signs = (1.0, -1.0) if method == "cmwp" else (1.0,)
    # one signal per (sign, x-feature): the node's own incoming row, or its negation
    rows = torch.cat([sign * top for sign in signs])  # (M, d)
    m = rows.shape[0]
    batch = images.shape[0]
    ones = torch.ones(m, batch, device=images.device, dtype=features.dtype)
    h = inputs[-1]
    p = _excite_rows(h, rows, ones)  # (M, B, d)
    for layer_module, x in zip(reversed(encoder[:-1]), reversed(inputs[:-1]), strict=True):
        weight = layer_module.weight.detach()
        p = _excite(x, p, lambda v, w=weight: F.linear(v, w.clamp(min=0)), _linear_ones(weight))
    if record is not None:
        record.append(("xnn encoder", p.flatten(2).sum(dim=2)))
    at_read = excitation_backprop(graph, p, record)
    maps = at_read.sum(dim=2)  # over channels: (M, B, h, w)
    if method == "cmwp":
        k = top.shape[0]
        maps = F.relu(maps[:k] - maps[k:])
    return maps.transpose(0, 1).detach(), graph.read_name


# ----------------------------------------------------------------------------- the rules


def _distribute(
    graph: ExcitationGraph, node: fx.Node, p: Tensor
) -> Iterator[tuple[fx.Node, Tensor]]:
    """(input node, its share of P) for each input of `node` that receives probability."""
    values = graph.values
    tensor_args = [a for a in node.args if isinstance(a, fx.Node) and _is_tensor(values[a])]
    if node.op == "call_module":
        module = graph.module.get_submodule(str(node.target))
        (source,) = tensor_args
        x = values[source]
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            folded = _foldable(graph, source)
            if folded is not None:
                (below,) = source.args
                yield below, _excite_affine(folded, values[below], p, module)
                return
            yield source, p.reshape(p.shape[0], *x.shape)
        elif isinstance(module, (nn.Conv2d, nn.Linear)):
            yield source, _excite_affine(module, x, p, None)
        elif isinstance(module, nn.MaxPool2d):
            yield source, _route(module, x, p)
        elif isinstance(module, _AVG_POOL):
            yield source, _excite(x, p, module, module)
        elif isinstance(module, _PASS_MODULES):
            yield source, p.reshape(p.shape[0], *x.shape)
        else:
            raise ValueError(_unsupported(type(module).__name__))
        return
    target = node.target
    if node.op == "call_function" and target in _ADD and len(tensor_args) == 2:
        yield from _split_sum(values, node, p)
    elif node.op == "call_function" and target in _MUL and len(tensor_args) == 2:
        yield _ungated(values, node, p)
    elif len(tensor_args) == 1 and (
        (node.op == "call_function" and target in _PASS_FUNCTIONS | _ADD | _MUL)
        or (node.op == "call_method" and target in _PASS_METHODS)
    ):
        # element-wise, or a sum / product with a constant
        yield tensor_args[0], p.reshape(p.shape[0], *values[tensor_args[0]].shape)
    elif (node.op == "call_function" and target in _RESHAPE_FUNCTIONS) or (
        node.op == "call_method" and target in _RESHAPE_METHODS
    ):
        yield from _reshape(values, node, tensor_args, p)
    elif node.op == "call_function" and target is F.max_pool2d:
        yield (
            tensor_args[0],
            _route(lambda v: _call(node, values, {tensor_args[0]: v}), values[tensor_args[0]], p),
        )
    elif node.op == "call_function" and target in (F.adaptive_avg_pool2d, F.avg_pool2d):
        pool = lambda v: _call(node, values, {tensor_args[0]: v})  # noqa: E731
        yield tensor_args[0], _excite(values[tensor_args[0]], p, pool, pool)
    else:
        raise ValueError(_unsupported(f"{node.op} {getattr(target, '__name__', target)}"))


def _excite(x: Tensor, p: Tensor, positive: Callable, uniform: Callable) -> Tensor:
    """MWP through a linear map with non-negative coefficients (`positive`, e.g. x -> W+ x).

    ``P(x) = x+ * J^T (P / positive(x+))``; where ``positive(x+)`` is 0, P goes to the
    receptive field in the proportions of `uniform` applied to ones (conserving the mass).
    """
    xp = x.detach().clamp(min=0).requires_grad_(True)
    z = positive(xp)
    live = z > torch.finfo(z.dtype).tiny
    ratio = torch.where(live, p / torch.where(live, z, torch.ones_like(z)), torch.zeros_like(p))
    (grad,) = torch.autograd.grad(z, xp, ratio, is_grads_batched=True)
    out = xp.detach() * grad
    dead = torch.where(live, torch.zeros_like(p), p)
    if bool((dead != 0).any()):
        ones = torch.ones_like(xp).requires_grad_(True)
        z1 = uniform(ones)
        ratio1 = torch.where(z1 > 0, dead / torch.where(z1 > 0, z1, torch.ones_like(z1)), 0.0)
        (grad1,) = torch.autograd.grad(z1, ones, ratio1, is_grads_batched=True)
        out = out + grad1
    return out


def _excite_rows(x: Tensor, rows: Tensor, p: Tensor) -> Tensor:
    """MWP from M single nodes, node m with incoming weights rows[m], down to x (B, d)."""
    positive = rows.clamp(min=0)  # (M, d)
    z = x.clamp(min=0) @ positive.T  # (B, M)
    live = torch.finfo(z.dtype).tiny < z.T  # (M, B)
    excited = x.clamp(min=0)[None] * positive[:, None, :] / torch.where(live, z.T, 1.0)[..., None]
    uniform = torch.full_like(excited, 1.0 / x.shape[1])
    return p[..., None] * torch.where(live[..., None], excited, uniform)


def _excite_affine(
    module: nn.Conv2d | nn.Linear, x: Tensor, p: Tensor, norm: nn.Module | None
) -> Tensor:
    weight = module.weight.detach()
    if norm is not None:
        scale = norm.weight.detach() if norm.affine else torch.ones_like(norm.running_var)
        scale = scale / torch.sqrt(norm.running_var + norm.eps)
        weight = weight * scale.reshape(-1, *([1] * (weight.ndim - 1)))
    positive = weight.clamp(min=0)
    if isinstance(module, nn.Linear):
        return _excite(x, p, lambda v: F.linear(v, positive), _linear_ones(weight))
    if module.padding_mode != "zeros":
        raise ValueError(_unsupported(f"Conv2d with padding_mode={module.padding_mode!r}"))

    def conv(v: Tensor, w: Tensor) -> Tensor:
        return F.conv2d(v, w, None, module.stride, module.padding, module.dilation, module.groups)

    return _excite(x, p, lambda v: conv(v, positive), lambda v: conv(v, torch.ones_like(positive)))


def _linear_ones(weight: Tensor) -> Callable[[Tensor], Tensor]:
    ones = torch.ones_like(weight)
    return lambda v: F.linear(v, ones)


def _route(pool: Callable, x: Tensor, p: Tensor) -> Tensor:
    """Max pooling: each output's P to the input that won it."""
    xx = x.detach().requires_grad_(True)
    z = pool(xx)
    (grad,) = torch.autograd.grad(z, xx, p.reshape(p.shape[0], *z.shape), is_grads_batched=True)
    return grad


def _split_sum(values: dict, node: fx.Node, p: Tensor) -> Iterator[tuple[fx.Node, Tensor]]:
    """A residual sum: P split by the operands' positive parts (evenly where both are <= 0)."""
    a_node, b_node = node.args[0], node.args[1]
    a, b = values[a_node], values[b_node]
    if a.shape != b.shape:
        yield _ungated(values, node, p)
        return
    a_pos, b_pos = a.clamp(min=0), b.clamp(min=0)
    total = a_pos + b_pos
    share = torch.where(total > 0, a_pos / torch.where(total > 0, total, 1.0), 0.5)
    yield a_node, p * share
    yield b_node, p * (1 - share)


def _ungated(values: dict, node: fx.Node, p: Tensor) -> tuple[fx.Node, Tensor]:
    """A product (or sum) with a broadcast operand: all of P to the full-size operand."""
    out_shape = values[node].shape
    full = [a for a in node.args[:2] if values[a].shape == out_shape]
    if len(full) != 1:
        raise ValueError(_unsupported(f"a product of two full-size tensors at {node.name}"))
    return full[0], p


def _reshape(
    values: dict, node: fx.Node, sources: list[fx.Node], p: Tensor
) -> Iterator[tuple[fx.Node, Tensor]]:
    leaves = {s: values[s].detach().requires_grad_(True) for s in sources}
    z = _call(node, values, leaves)
    grads = torch.autograd.grad(
        z, list(leaves.values()), p.reshape(p.shape[0], *z.shape), is_grads_batched=True
    )
    yield from zip(sources, grads, strict=True)


def _foldable(graph: ExcitationGraph, source: fx.Node) -> nn.Module | None:
    """The conv/linear module feeding a batch norm, if the norm is its only user."""
    if source.op != "call_module" or len(source.users) != 1:
        return None
    module = graph.module.get_submodule(str(source.target))
    return module if isinstance(module, (nn.Conv2d, nn.Linear)) else None


def _unsupported(what: str) -> str:
    return (
        f"Excitation Backprop does not handle {what} (it handles conv, linear, batch norm, "
        "ReLU-family activations, pooling, residual sums, gates and reshapes); "
        "use heatmap='gradcam'"
    )


# ----------------------------------------------------------------------------- tracing


def _feature_node(
    traced: fx.GraphModule, nodes: list[fx.Node], model: nn.Module, layer: str | None
) -> fx.Node:
    if layer is None:
        linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("the model has no nn.Linear: pass layer= explicitly")
        calls = [n for n in nodes if n.op == "call_module" and n.target == linears[-1]]
        if len(calls) != 1:
            raise ValueError(f"the last linear layer {linears[-1]!r} must run exactly once")
        return calls[0].args[0]
    inside = [n for n in nodes if _owner(n) == layer or layer in _stack(n)]
    if not inside:
        raise ValueError(f"layer {layer!r} is not a module of this model")
    return inside[-1]


def _stack(node: fx.Node) -> dict:
    return node.meta.get("nn_module_stack") or {}


def _owner(node: fx.Node) -> str | None:
    return str(node.target) if node.op == "call_module" else None


def _is_tensor(value: Any) -> bool:
    return isinstance(value, Tensor)


def _cuts(nodes: list[fx.Node], feature: fx.Node) -> list[fx.Node]:
    """Nodes every path from the input to `feature` passes through, in order."""
    relevant = _ancestors(feature)
    order = [n for n in nodes if n in relevant]
    position = {n: i for i, n in enumerate(order)}
    reach = 0
    cuts = []
    for i, node in enumerate(order):
        if reach <= i:
            cuts.append(node)
        users = [position[u] for u in node.users if u in position]
        reach = max(reach, *users, i)
    return cuts


def _ancestors(node: fx.Node) -> set[fx.Node]:
    seen = {node}
    stack = [node]
    while stack:
        for parent in stack.pop().all_input_nodes:
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return seen


def _run(traced: fx.GraphModule, nodes: list[fx.Node], images: Tensor) -> dict[fx.Node, Any]:
    values: dict[fx.Node, Any] = {}
    for node in nodes:
        if node.op == "placeholder":
            values[node] = images
        elif node.op == "get_attr":
            values[node] = _fetch_attr(traced, str(node.target))
        else:
            values[node] = _call(node, values, {})
    return values


def _call(node: fx.Node, values: dict, override: dict) -> Any:
    def load(arg: Any) -> Any:
        return override.get(arg, values.get(arg)) if isinstance(arg, fx.Node) else arg

    args = fx.node.map_aggregate(node.args, load)
    kwargs = fx.node.map_aggregate(node.kwargs, load)
    if node.op == "call_module":
        return node.graph.owning_module.get_submodule(str(node.target))(*args, **kwargs)
    if node.op == "call_function":
        return node.target(*args, **kwargs)
    if node.op == "call_method":
        self_arg, *rest = args
        return getattr(self_arg, str(node.target))(*rest, **kwargs)
    raise ValueError(f"unexpected node {node.op} {node.target}")


def _fetch_attr(traced: fx.GraphModule, target: str) -> Any:
    value: Any = traced
    for part in target.split("."):
        value = getattr(value, part)
    return value


@contextmanager
def _no_inplace(module: nn.Module) -> Iterator[None]:
    """In-place activations off while recording: they would overwrite recorded values."""
    flagged = [m for m in module.modules() if getattr(m, "inplace", False) is True]
    try:
        for m in flagged:
            m.inplace = False
        yield
    finally:
        for m in flagged:
            m.inplace = True


# ----------------------------------------------------------------------------- Grad-CAM


def _gradcam_maps(
    model: nn.Module, encoder: nn.ModuleList, images: Tensor, layer: str | None
) -> tuple[Tensor, str]:
    """Grad-CAM of each x-feature at the last convolutional block (ReLU of the weighted sum)."""
    layer_name = resolve_target_layer(model, images[:1])
    captured: list[Tensor] = []
    features: list[Tensor] = []
    handles = [
        model.get_submodule(layer_name).register_forward_hook(
            lambda _m, _i, output: captured.append(output)
        )
    ]
    if layer is None:
        last = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        handles.append(
            last.register_forward_pre_hook(lambda _m, inputs: features.append(inputs[0]))
        )
    else:
        handles.append(
            model.get_submodule(layer).register_forward_hook(
                lambda _m, _i, output: features.append(output)
            )
        )
    x = images.detach().requires_grad_(True)
    try:
        call_model(model, x)
    finally:
        for handle in handles:
            handle.remove()
    activation = captured[-1]
    z = features[-1].flatten(1).float()
    for layer_module in encoder:
        z = F.relu(layer_module(z))
    maps = []
    for j in range(z.shape[1]):
        (grad,) = torch.autograd.grad(z[:, j].sum(), activation, retain_graph=True)
        weights = grad.mean(dim=(2, 3), keepdim=True)
        maps.append(F.relu((weights * activation).sum(dim=1)).detach())
    return torch.stack(maps, dim=1), layer_name
