"""Analog evaluation of an IR graph: the ANN it came from, or the rate limit of a spiking graph.

For an ANN graph this *is* the source network (ReLU, MaxPool, BatchNorm ... evaluated exactly).
For a spiking graph every population outputs its steady-state firing rate in spikes per step,

    IF:      r = clip((I + b) / theta, 0, 1)         (the limit T -> inf of spikes / T)
    Readout: y = I + b                               (v[T] / T of the integrator)
    Input:   direct -> x;  rate -> clip(x, 0, 1);  spikes -> mean over time

which is what the event simulator converges to as T grows. Threshold balancing calibrates on
it, and tests compare simulated rates against it.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from snc.errors import InvalidData, UnsupportedOperator
from snc.ir import Graph
from snc.ir.annotations import relu_ceiling
from snc.ir.neurons import is_builtin, require_model

from .. import dense_ops


def _population_rate(node, xs: list[torch.Tensor], mode: str) -> torch.Tensor:
    current = dense_ops.add(node, xs)
    if node.bias is not None:
        current = current + torch.from_numpy(node.bias)
    if node.kind == "Readout":
        return current
    if mode == "relu":
        ceiling = relu_ceiling(node)
        act = torch.clamp(current, 0.0, float(ceiling)) if ceiling is not None else torch.clamp_min(current, 0.0)
        return act if node.keep is None else act * torch.from_numpy(node.keep.astype(np.float32))
    if node.kind == "LIF" and (node.decay_current != 1.0 or node.decay_voltage != 0.0):
        raise UnsupportedOperator("the rate limit of a leaky LIF population has no closed form; simulate it instead", node=None)
    th = torch.as_tensor(np.asarray(node.threshold, dtype=np.float32))
    rate = torch.clamp(current / th, 0.0, 1.0)
    return rate if node.keep is None else rate * torch.from_numpy(node.keep.astype(np.float32))


def _input_value(node, x: torch.Tensor) -> torch.Tensor:
    if node.encoding == "direct":
        return x
    if node.encoding == "rate":
        return torch.clamp(x, 0.0, 1.0)
    # spikes: (N, T, *shape) -> mean rate over time
    return x.mean(dim=1)


@torch.inference_mode()
def evaluate(
    graph: Graph,
    x: np.ndarray | dict[str, np.ndarray],
    *,
    keep: Iterable[str] = (),
    batch_size: int = 512,
    mode: str = "rate",
) -> dict[str, np.ndarray]:
    """Evaluate ``graph`` on a batch of samples.

    mode:  ``rate`` - spiking populations give their firing rates (the T -> inf limit);
           ``relu`` - they give relu(I + b) (capped by a ReLU ceiling kept in meta), i.e. the
           activations of the ANN the graph was converted from, before threshold balancing.

    x:     samples (N, *input_shape) for a single-input graph, or {input name: samples}.
    keep:  names of intermediate nodes whose values to return besides the outputs.
    Returns {name: array (N, *shape)} for the outputs and the kept nodes.
    """
    if graph.is_recurrent:
        raise UnsupportedOperator("the rate limit of a recurrent network has no closed form here; simulate it instead")
    inputs = graph.input_names
    if not isinstance(x, dict):
        if len(inputs) != 1:
            raise InvalidData(f"graph has {len(inputs)} inputs {inputs}; pass a dict of arrays")
        x = {inputs[0]: x}
    n = None
    x = dict(x)
    for name in inputs:
        if name not in x:
            raise InvalidData("no data given for this input", node=name)
        x[name] = graph.nodes[name].conform(x[name], name)
        if n is None:
            n = len(x[name])
        elif len(x[name]) != n:
            raise InvalidData("inputs hold different numbers of samples")
    order = graph.topological_order()
    wanted = list(dict.fromkeys(list(graph.outputs) + list(keep)))
    # Free intermediate values as soon as their last user has run.
    last_use: dict[str, int] = {}
    for i, name in enumerate(order):
        for src in graph.inputs_of(name):
            last_use[src] = i
    results: dict[str, list[np.ndarray]] = {w: [] for w in wanted}
    for start in range(0, n or 0, batch_size):
        values: dict[str, torch.Tensor] = {}
        for i, name in enumerate(order):
            node = graph.nodes[name]
            xs = [values[src] for src in graph.inputs_of(name)]
            if node.role == "input":
                part = x[name][start:start + batch_size]
                if node.kind == "Tokens":  # token ids stay integers
                    batch = torch.from_numpy(np.ascontiguousarray(part, dtype=np.int64))
                else:
                    batch = torch.from_numpy(np.ascontiguousarray(part, dtype=np.float32))
                out = batch if node.kind == "Tokens" else _input_value(node, batch)
            elif node.role in ("neuron", "readout"):
                model = None
                if mode != "relu":  # the ANN view (relu) holds for any model; the rate limit does not
                    model = require_model(node, name, "the rate-limit evaluator", "rate")
                try:
                    if model is not None and not is_builtin(node):
                        out = model.rate(node, dense_ops.add(node, xs))  # the model's own rate limit
                    else:
                        out = _population_rate(node, xs, mode)
                except UnsupportedOperator as exc:
                    exc.node = name
                    raise
            else:
                out = dense_ops.apply(node, xs)
            values[name] = out
            if name in results:
                results[name].append(out.numpy().copy())
            for src in graph.inputs_of(name):
                if last_use.get(src) == i and src not in results:
                    values.pop(src, None)
    return {k: (np.concatenate(v) if v else np.zeros((0,))) for k, v in results.items()}


def predict(graph: Graph, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """argmax over the (first) output for each sample."""
    out = evaluate(graph, x, batch_size=batch_size)[graph.outputs[0]]
    return out.reshape(len(out), -1).argmax(axis=1)
