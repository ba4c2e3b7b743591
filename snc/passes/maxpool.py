"""Max pooling built from spiking units, exact in the rate limit.

Over non-negative values (rates of spiking populations) max(a, b) = b + relu(a - b). A k x k
window is reduced by a tournament of such pairs: every ``relu(a - b)`` becomes a unit of an IF
population (reset by subtraction), and the window's maximum is the *sum* of spike trains of
the source and of some of those units. Downstream synapses are linear, so the sum needs no
neurons: the consumers read it through an Add of selection convolutions.

For a 2x2 window [a b; c d]:

    level 1:  r1 = relu(a - b),  r2 = relu(c - d)
    level 2:  r3 = relu((b + r1) - (d + r2))
    max     = d + r2 + r3

Each level is one IF population of C * (units per window) channels, fed by grouped
convolutions (groups = C) from the pooled input and from earlier levels. Unlike gating by the
most active neuron or replacing max by average pooling, the rate of ``max`` converges to the
true maximum as T grows: the relu units only make an O(1) error in spike count, so the rate
error shrinks like 1/T.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from snc.ir import IF, Add, Conv2d, Graph
from snc.ir.annotations import MaxPoolPart, with_maxpool_part

Term = tuple  # ("x", k) for window element k, or (level, unit)


def _combine(a: dict, b: dict, sign: float = 1.0) -> dict:
    out = defaultdict(float, a)
    for k, v in b.items():
        out[k] += sign * v
    return {k: v for k, v in out.items() if v != 0}


def tournament(n: int) -> tuple[list[list[dict]], dict]:
    """Units per level (each a dict term -> coefficient of its input a - b) and the final
    maximum (dict term -> coefficient), for a window of n elements."""
    current = [{("x", k): 1.0} for k in range(n)]
    levels: list[list[dict]] = []
    while len(current) > 1:
        level = len(levels) + 1
        units: list[dict] = []
        nxt = []
        for i in range(0, len(current) - 1, 2):
            a, b = current[i], current[i + 1]
            units.append(_combine(a, b, -1.0))
            nxt.append(_combine(b, {(level, len(units) - 1): 1.0}))
        if len(current) % 2:
            nxt.append(current[-1])
        levels.append(units)
        current = nxt
    return levels, current[0]


def expand_maxpool(g: Graph, name: str, shapes: dict) -> list[str]:
    """Replace the MaxPool2d ``name`` by the spiking construction (in place). The node called
    ``name`` becomes the Add (or selection) that carries the maximum, so its users are unchanged.
    Returns the names of the new IF populations."""
    node = g.nodes[name]
    (src,) = g.inputs_of(name)
    c = shapes[src][0]
    kh, kw = node.kernel
    n = kh * kw
    _, ho, wo = shapes[name]
    levels, final = tournament(n)
    conv_kw = dict(stride=node.stride, padding=node.padding, dilation=node.dilation, groups=c)
    unit_counts = [len(u) for u in levels]
    mark = with_maxpool_part({}, MaxPoolPart(pool=name))  # synapses that implement the max, not weights of the model
    # Selections stay +-1: they only route spike trains into the sum that carries the maximum.
    select = with_maxpool_part({}, MaxPoolPart(pool=name, select=True))
    populations: list[str] = []

    def from_x(coefs: list[dict], out_per_group: int) -> np.ndarray | None:
        w = np.zeros((c * out_per_group, 1, kh, kw), dtype=np.float32)
        for u, terms in enumerate(coefs):
            for term, v in terms.items():
                if term[0] == "x":
                    w[u::out_per_group, 0, term[1] // kw, term[1] % kw] = v
        return w if np.any(w) else None

    def from_level(coefs: list[dict], out_per_group: int, level: int) -> np.ndarray | None:
        w = np.zeros((c * out_per_group, unit_counts[level - 1], 1, 1), dtype=np.float32)
        for u, terms in enumerate(coefs):
            for term, v in terms.items():
                if term[0] == level:
                    w[u::out_per_group, term[1], 0, 0] = v
        return w if np.any(w) else None

    pop_names: dict[int, str] = {}
    for li, units in enumerate(levels, start=1):
        per = len(units)
        inputs = []
        wx = from_x(units, per)
        if wx is not None:
            inputs.append(g.add(g.unique_name(f"{name}.max{li}.from_x"), Conv2d(weight=wx, **conv_kw, meta=dict(mark)), [src]))
        for lj in range(1, li):
            wl = from_level(units, per, lj)
            if wl is not None:
                inputs.append(g.add(g.unique_name(f"{name}.max{li}.from_max{lj}"), Conv2d(weight=wl, groups=c, meta=dict(mark)), [pop_names[lj]]))
        pop = g.add(
            g.unique_name(f"{name}.max{li}"),
            IF(shape=(c * per, ho, wo), threshold=1.0, reset="subtract", meta=with_maxpool_part({}, MaxPoolPart(pool=name, unit=True, source=src, level=li))),
            inputs,
        )
        pop_names[li] = pop
        populations.append(pop)
    # The maximum: selections from the input and from the levels, summed.
    selections = []
    wx = from_x([final], 1)
    if wx is not None:
        selections.append(g.add(g.unique_name(f"{name}.select_x"), Conv2d(weight=wx, **conv_kw, meta=dict(select)), [src]))
    for lj in range(1, len(levels) + 1):
        wl = from_level([final], 1, lj)
        if wl is not None:
            selections.append(g.add(g.unique_name(f"{name}.select_max{lj}"), Conv2d(weight=wl, groups=c, meta=dict(select)), [pop_names[lj]]))
    meta = dict(node.meta)
    meta["converted_from"] = "MaxPool2d"
    g.replace(name, Add(meta=meta))
    g.set_inputs(name, selections)
    return populations
