"""``fold-bn``: fold inference batch normalisation into the layer before it.

For y = BN(W x + b) with per-channel scale s = gamma / sqrt(var + eps) and shift
t = beta - s * mean:  y = (s W) x + (s b + t). Exact, including padded convolutions (the
affine map acts on the convolution's output). A BatchNorm that follows anything else becomes a
per-channel ScaleShift for ``fold-affine``.
"""
from __future__ import annotations

import numpy as np

from snc.ir import Graph, ScaleShift

from . import PassContext

NAME = "fold-bn"


def fold_batchnorm(graph: Graph, ctx: PassContext) -> Graph:
    g = graph.copy()
    shapes = g.infer_shapes()
    for name in g.topological_order():
        node = g.nodes.get(name)
        if node is None or node.kind != "BatchNorm":
            continue
        (src,) = g.inputs_of(name)
        prev = g.nodes[src]
        s, t = node.affine()
        if prev.kind in ("Conv2d", "Dense") and g.users_of(src) == [name] and src not in g.outputs:
            view = (-1,) + (1,) * (prev.weight.ndim - 1)
            weight = prev.weight * s.reshape(view)
            bias = (prev.bias if prev.bias is not None else np.zeros_like(s)) * s + t
            g.replace(src, prev.replace(weight=weight.astype(np.float32), bias=bias.astype(np.float32)))
            g.bypass(name)
            ctx.note(NAME, f"folded BatchNorm {name!r} into {prev.kind} {src!r}", node=src)
        else:
            shape = shapes[name]
            view = (-1,) + (1,) * (len(shape) - 1)
            g.replace(name, ScaleShift(scale=s.reshape(view), shift=t.reshape(view), meta=dict(node.meta)))
            ctx.note(NAME, f"BatchNorm {name!r} follows {prev.kind} {src!r}: kept as a per-channel scale/shift", node=name)
    return g
