"""``convert``: turn an ANN graph into a spiking graph (rate coding, Rueckauer et al. 2017).

* every ReLU becomes an IF population with reset by subtraction (threshold 1 until ``balance``
  sets it; a ReLU ceiling, e.g. ReLU6 or Clip, is kept as ``snc.ir.annotations.relu_ceiling``);
* biases (of Dense/Conv2d, and the shifts of remaining ScaleShifts) become constant currents of
  the neurons they reach: the affine map feeding each population is evaluated with every
  population's output at zero, which gives an exact per-neuron bias even through padded
  convolutions and pooling; the operators keep only their linear part;
* max pooling becomes the exact spiking construction of ``maxpool.py`` (a MaxPool directly
  before a ReLU is first swapped with it: relu(max(x)) = max(relu(x)));
* except after an analog-input layer (option ``host_maxpool``, on by default): a max pool after
  a ReLU whose input comes from direct inputs through linear operators only runs on the host,
  before the neurons (``HostMaxPool2d``). The layer's input current is constant, an IF
  neuron's spike count is monotone in it, so the pooled neuron fires exactly as often as the
  window's most active one would: exact at every T, and the layer needs 1/k^2 of the neurons and
  none of the construction's. Done where the constant currents (biases) are equal within every
  window, which per-channel biases always are;
* the output layer becomes a non-spiking Readout (membrane integrator), so logits never spike.
"""
from __future__ import annotations

import numpy as np
import torch

from snc.backends import dense_ops
from snc.errors import UnsupportedOperator
from snc.ir import IF, Graph, Readout, Scale, ScaleShift
from snc.ir.graph import dense_macs
from snc.ir.annotations import is_maxpool_construct, with_relu_ceiling

from dataclasses import dataclass

from snc.ir import HostMaxPool2d

from . import PassContext
from .fold_affine import fold_scale_into_users
from .maxpool import expand_maxpool
from .options import option

NAME = "convert"


@dataclass
class Options:
    """Options of ``convert``."""

    host_maxpool: bool = option(True, "max pools after an analog-input layer run on the host before the neurons "
                                      "(exact, fewer neurons); False builds every max pool from spiking units")
# Operators through which non-negative values stay non-negative.
_KEEPS_SIGN = ("SumPool2d", "AvgPool2d", "Flatten", "Reshape", "Transpose", "Concat", "MaxPool2d")


def _swap_maxpool_relu(g: Graph, ctx: PassContext) -> None:
    for name in g.topological_order():
        node = g.nodes.get(name)
        if node is None or node.kind != "MaxPool2d":
            continue
        users = g.users_of(name)
        if len(users) == 1 and g.nodes[users[0]].kind == "ReLU" and name not in g.outputs:
            relu = users[0]
            (src,) = g.inputs_of(name)
            after = g.users_of(relu)
            g.set_inputs(relu, [src])
            g.set_inputs(name, [relu])
            for u in after:
                g.set_inputs(u, [name if x == relu else x for x in g.inputs_of(u)])
            g.outputs = [name if o == relu else o for o in g.outputs]
            ctx.note(NAME, f"swapped MaxPool {name!r} and ReLU {relu!r} (relu(max x) = max(relu x))", node=name)


def _analog_only(g: Graph, name: str) -> bool:
    """Whether ``name``'s value comes from direct inputs through linear or affine operators only."""
    node = g.nodes[name]
    if node.role == "input":
        return node.encoding == "direct"
    if node.role != "linear" and node.kind not in ("BatchNorm", "ScaleShift"):
        return False  # (one host operator per path: a second max pool stays spiking)
    return all(_analog_only(g, i) for i in g.inputs_of(name))


def _host_maxpools(g: Graph, ctx: PassContext) -> None:
    """ReLU -> MaxPool and MaxPool -> ReLU on an analog-only input become HostMaxPool2d -> ReLU
    (see the module docstring) where the constant currents are equal within every window."""
    constants = None
    for name in g.topological_order():
        node = g.nodes.get(name)
        if node is None or node.kind != "MaxPool2d" or name in g.outputs:
            continue
        (before,) = g.inputs_of(name)
        after = g.users_of(name)
        if g.nodes[before].kind == "ReLU" and g.users_of(before) == [name] and before not in g.outputs:
            relu, pre, swap = before, g.inputs_of(before)[0], True
        elif len(after) == 1 and g.nodes[after[0]].kind == "ReLU":
            relu, pre, swap = after[0], before, False
        else:
            continue
        if not _analog_only(g, pre):
            continue
        if constants is None:
            constants = _constant_currents(g, g.infer_shapes())
        c = torch.from_numpy(constants[pre][None].astype(np.float64))
        if not torch.equal(dense_ops.max_pool2d(node, [c]), -dense_ops.max_pool2d(node, [-c])):
            ctx.note(NAME, f"max pool {name!r} stays spiking: the constant currents before it differ within a window", node=name)
            continue
        if swap:
            g.set_inputs(name, [pre])
            g.set_inputs(relu, [name])
            for u in after:
                g.set_inputs(u, [relu if x == name else x for x in g.inputs_of(u)])
        g.replace(name, HostMaxPool2d(kernel=node.kernel, stride=node.stride, padding=node.padding,
                                      dilation=node.dilation, meta=dict(node.meta)))
        constants = None  # the graph changed
        ctx.note(NAME, f"max pool {name!r} runs on the host before the neurons of {relu!r} (its input is analog: "
                 "exact, no spiking construction)", node=name)


def _non_negative(g: Graph, name: str) -> bool:
    node = g.nodes[name]
    if node.kind == "ReLU" or node.role == "neuron":
        return True
    if node.role == "input":
        return node.encoding != "direct"
    if node.kind in _KEEPS_SIGN:
        return all(_non_negative(g, i) for i in g.inputs_of(name))
    return False


def source_macs(g: Graph, shapes: dict | None = None) -> int:
    """Multiply-accumulates of one inference of the ANN: every Dense and Conv2d layer counted
    densely (all kernel taps, padding included, as an ANN accelerator computes them); pooling,
    normalisation and bias excluded. The baseline an SNN's energy is compared with."""
    shapes = shapes or g.infer_shapes()
    return sum(dense_macs(node, shapes[name]) for name, node in g.nodes.items()
               if node.kind in ("Dense", "Conv2d") and not is_maxpool_construct(node))


@torch.inference_mode()
def _constant_currents(g: Graph, shapes: dict) -> dict[str, np.ndarray]:
    """Value of every node when all population outputs (inputs, ReLUs, max-pools) are zero."""
    values: dict[str, torch.Tensor] = {}
    for name in g.topological_order():
        node = g.nodes[name]
        if node.role in ("input", "neuron") or node.kind in ("ReLU", "MaxPool2d"):
            values[name] = torch.zeros((1,) + tuple(shapes[name]))
        else:
            values[name] = dense_ops.apply(node, [values[i] for i in g.inputs_of(name)])
    return {k: v[0].numpy().astype(np.float32) for k, v in values.items()}


def convert(graph: Graph, ctx: PassContext) -> Graph:
    g = graph.copy()
    if g.is_spiking and any(n.role == "readout" for n in g.nodes.values()):
        ctx.note(NAME, "graph is already spiking; nothing to convert")
        return g
    for name in list(g.nodes):
        node = g.nodes[name]
        if node.kind == "BatchNorm":
            s, t = node.affine()
            view = (-1,) + (1,) * (len(g.infer_shapes()[name]) - 1)
            g.replace(name, ScaleShift(scale=s.reshape(view), shift=t.reshape(view), meta=dict(node.meta)))
        elif node.role == "neuron" or node.role == "readout":
            raise UnsupportedOperator("mixed ANN/SNN graphs are not supported by convert", node=name)
    if ctx.config(NAME, Options).host_maxpool:
        _host_maxpools(g, ctx)
    _swap_maxpool_relu(g, ctx)
    shapes = g.infer_shapes()
    g.meta["source_macs"] = source_macs(g, shapes)
    for name in g.topological_order():
        if g.nodes[name].kind == "MaxPool2d":
            (src,) = g.inputs_of(name)
            if not _non_negative(g, src):
                raise UnsupportedOperator(
                    "max pooling over values that may be negative has no rate-coded form (put it after a ReLU)", node=name
                )
    constants = _constant_currents(g, shapes)

    # Outputs -> readouts (logits never spike).
    readouts = []
    for out in list(g.outputs):
        node = g.nodes[out]
        rname = g.unique_name("readout" if len(g.outputs) == 1 else f"readout_{out}")
        if node.kind == "ReLU":
            # A rectified output: count the spikes of its population.
            g.add(rname, Readout(shape=shapes[out], mode="spike_count"), [out])
            ctx.note(NAME, f"output {out!r} is a ReLU: reading out its spike counts", node=rname)
        else:
            bias = constants[out]
            g.add(rname, Readout(shape=shapes[out], mode="membrane", bias=bias if np.any(bias) else None), [out])
            ctx.note(NAME, f"output {out!r} becomes the non-spiking readout {rname!r}", node=rname)
        readouts.append(rname)
    g.outputs = readouts

    # ReLU -> IF with the exact constant current of its input.
    n_relu = 0
    for name in g.topological_order():
        node = g.nodes[name]
        if node.kind != "ReLU":
            continue
        (src,) = g.inputs_of(name)
        bias = constants[src]
        meta = with_relu_ceiling(node.meta, node.ceiling) if node.ceiling is not None else dict(node.meta)
        g.replace(name, IF(shape=shapes[name], threshold=1.0, reset="subtract", bias=bias if np.any(bias) else None, meta=meta))
        n_relu += 1
    ctx.note(NAME, f"{n_relu} ReLU layer(s) became IF populations (reset by subtraction, biases as constant currents)")

    # Operators keep their linear part only; leftover gains fold into the next weights if they can.
    for name in list(g.topological_order()):
        node = g.nodes[name]
        if node.kind in ("Dense", "Conv2d") and node.bias is not None:
            g.replace(name, node.replace(bias=None))
        elif node.kind == "ScaleShift":
            g.replace(name, Scale(scale=node.scale, meta=dict(node.meta)))
    shapes = g.infer_shapes()
    for name in list(g.topological_order()):
        node = g.nodes.get(name)
        if node is None or node.kind != "Scale":
            continue
        if np.all(node.scale == 1) and name not in g.outputs:
            g.bypass(name)
        elif fold_scale_into_users(g, name, shapes):
            ctx.note(NAME, f"folded the gain {name!r} into the weights after it", node=name)

    # Max pooling -> spiking tournament.
    shapes = g.infer_shapes()
    for name in g.topological_order():
        if name in g.nodes and g.nodes[name].kind == "MaxPool2d":
            pops = expand_maxpool(g, name, shapes)
            ctx.note(
                NAME,
                f"max pool {name!r} built from {len(pops)} level(s) of relu(a - b) units: exact in the rate limit, "
                "with an O(1/T) transient",
                node=name,
            )
    g.validate()
    return g
