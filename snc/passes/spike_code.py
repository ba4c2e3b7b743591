"""``spike-code``: spike coding of the input of every static-weight projection of a language
model (SpikingBrain's scheme, snc.ir.spike_coding).

Every distinct value that feeds ``Projection`` nodes gets one ``SpikeCode`` node (q, k and v of
a block share the coded input, as they share the events on a chip): per token V_th =
mean(|x|)/k, counts round(x/V_th), expanded into events of ``coding``. With calibration token
ids the pass fixes each coder's time base, ``steps``: the most steps the coding needs on the
calibration data, measured with every earlier projection already coded; inputs that later need
more are clipped and ``snc simulate`` reports the clipped share. Without calibration each batch
takes the steps it needs.

``w8``: W8ASpike weights (symmetric INT8 per output row and per group of ``w8_group`` input
channels); the projections keep float fields holding the dequantised values, and
``meta["w8"]`` records the format.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snc.errors import InvalidOption
from snc.ir import Graph
from snc.ir import spike_coding as sc
from snc.ir.sequence import Projection, SpikeCode, is_sequence_model

from . import PassContext
from .options import option

NAME = "spike-code"


@dataclass
class Options:
    """Options of ``spike-code``."""

    coding: str = option("ternary", "spike coding of projection inputs", choices=sc.CODINGS)
    k: float = option(3.0, "threshold divisor: V_th = mean(|x|) / k per token", check=lambda v: v > 0, expect="a number > 0")
    max_count: int | None = option(None, "clip counts to [-max_count, max_count] (None: the calibrated steps alone limit them)",
                                   check=lambda v: v >= 1, expect="an integer >= 1 or None")
    payload_bits: int = option(24, "graded coding: payload bits of an event (Loihi 2: 8 to 24)",
                               check=lambda v: sc.PAYLOAD_BITS[0] <= v <= sc.PAYLOAD_BITS[1], expect="an integer 8..24")
    w8: bool = option(False, "W8ASpike: INT8 weights per output row and group of input channels")
    w8_group: int = option(128, "input channels per W8 scale", check=lambda v: v >= 1, expect="an integer >= 1")
    exclude: tuple | list = option((), "projection names whose input stays analog (e.g. the LM head)")


def spike_code(graph: Graph, ctx: PassContext) -> Graph:
    if not is_sequence_model(graph):
        raise InvalidOption("spike-code codes the projections of a language model (token input); this graph reads "
                            f"{', '.join(graph.nodes[n].kind for n in graph.input_names)}")
    opt = ctx.config(NAME, Options)
    g = graph.copy()
    projections = [n for n in g.topological_order() if isinstance(g.nodes[n], Projection)]
    unknown = sorted(set(opt.exclude) - set(projections))
    if unknown:
        raise InvalidOption(f"spike-code: exclude names {', '.join(map(repr, unknown))}, which are not projections")
    coders: dict[str, str] = {}
    for name in projections:
        if name in opt.exclude:
            continue
        (src,) = g.inputs_of(name)
        if isinstance(g.nodes[src], SpikeCode):
            continue
        if src not in coders:
            coder = f"{src}.code"
            g.add(coder, SpikeCode(coding=opt.coding, k=float(opt.k), max_count=opt.max_count,
                                   payload_bits=int(opt.payload_bits)), [src])
            coders[src] = coder
        g.set_inputs(name, [coders[src]])
    if opt.w8:
        for name in projections:
            node = g.nodes[name]
            g.replace(name, node.replace(weight=sc.w8_dequantized(node.weight, opt.w8_group).astype(np.float32)))
        g.meta["w8"] = {"group": int(opt.w8_group), "bits": 8, "scales": "per output row and input group"}
    steps = _calibrate(g, list(coders.values()), ctx) if ctx.calibration is not None else {}
    for coder, t in steps.items():
        g.replace(coder, g.nodes[coder].replace(steps=int(t)))
    g.meta["spike_code"] = {"coding": opt.coding, "k": float(opt.k), "max_count": opt.max_count,
                            "coders": len(coders), "calibrated": bool(steps)}
    detail = f"; steps from calibration {min(steps.values())}..{max(steps.values())}" if steps else ""
    ctx.note(NAME, f"{opt.coding} coding (k = {opt.k:g}) of the inputs of {len(projections) - len(opt.exclude)} "
                   f"projection(s) through {len(coders)} coder(s){detail}" + ("; W8 weights" if opt.w8 else ""))
    return g


def _calibrate(g: Graph, coders: list[str], ctx: PassContext) -> dict[str, int]:
    """Each coder's steps: the most its coding needs on the calibration tokens (at least 1; 2
    for bitwise), every coder coding as it will run (no step limit yet)."""
    from snc.backends import analog

    sources = {c: g.inputs_of(c)[0] for c in coders}
    values = analog.evaluate(g, ctx.calibration, keep=list(dict.fromkeys(sources.values())), batch_size=64)
    least = 2 if coders and g.nodes[coders[0]].coding == "bitwise" else 1
    out = {}
    for coder, src in sources.items():
        c, _, _ = g.nodes[coder].code(values[src], coder)
        out[coder] = max(least, sc.steps(c, g.nodes[coder].coding))
    return out
