"""``balance``: data-based threshold balancing (Rueckauer et al., Front. Neurosci. 2017).

For every spiking population P the pass runs the calibration samples through the graph's ANN
equivalent (each IF population as relu(I + b), capped by a ReLU ceiling if the source had one)
and takes lambda_P, the p-th percentile of P's positive activations (p = 99.9 by default; 100
gives the maximum). Then

    threshold_P = lambda_P              (a spike stands for lambda_P units of activation)
    weights leaving P *= lambda_P       (so the next layer receives the same current)

With reset by subtraction, P's rate is then clip(a_P / lambda_P, 0, 1) and the network computes
the ANN's function up to the percentile clipping. Each source scales only its own outgoing
synapses, so residual joins and concatenations of differently scaled branches stay consistent.
"""
from __future__ import annotations

import numpy as np

from snc.errors import CalibrationError, UnsupportedOperator
from snc.ir import Graph, Scale
from snc.ir.annotations import maxpool_part, relu_ceiling
from snc.ir.neurons import is_builtin

from . import PassContext

NAME = "balance"
_COMMUTE = ("Flatten", "Reshape", "Transpose", "SumPool2d", "AvgPool2d")


def scale_outputs(g: Graph, src: str, factor: float, start: str | None = None) -> None:
    """Multiply everything ``src`` emits by ``factor``, folding the factor into the first weights
    on each path (Dense, Conv2d, Scale) or, where a path reaches a join or a population first,
    into a Scale node inserted on that edge.

    Max pooling (maxpool.py) is a sum of +-1 selections of spike trains that all carry the
    pooled population's amplitude: the selections stay +-1 and the factor, pushed from the
    pooled population only, goes through the sum into the weights after it."""
    part = maxpool_part(g.nodes[src]) if src in g.nodes else None
    from_unit = part is not None and part.unit
    for user in g.users_of(src):
        node = g.nodes[user]
        user_part = maxpool_part(node)
        if user_part is not None and user_part.select:
            if not from_unit:
                (add,) = g.users_of(user)  # the Add that carries the maximum
                scale_outputs(g, add, factor)
            continue
        if node.kind in ("Dense", "Conv2d"):
            g.replace(user, node.replace(weight=(node.weight * np.float32(factor)).astype(np.float32)))
        elif node.kind == "Scale":
            g.replace(user, node.replace(scale=(node.scale * np.float32(factor)).astype(np.float32)))
        elif node.kind in _COMMUTE:
            scale_outputs(g, user, factor)
        elif node.kind == "Readout" and node.mode == "spike_count":
            continue  # a positive factor does not change which output counts most
        elif node.kind == "Concat" and _scale_concat_segment(g, user, g.inputs_of(user).index(src), factor):
            continue
        else:
            s = g.add(g.unique_name(f"{src}.gain"), Scale(scale=np.float32(factor)), [src])
            g.set_inputs(user, [s if x == src else x for x in g.inputs_of(user)])


def _scale_concat_segment(g: Graph, concat: str, k: int, factor: float) -> bool:
    """Scale the part of a concatenation that comes from its k-th input, inside the weights of
    the operators after it (through reshapes and pooling, which keep the segments apart), so that
    no gain node sits between two weighted operators. False (nothing changed) if it cannot."""
    from snc.backends import linear_maps

    shapes = g.infer_shapes()
    ins = g.inputs_of(concat)
    if ins.count(ins[k]) != 1:
        return False
    node = g.nodes[concat]
    seg = np.zeros(shapes[concat], dtype=np.float64)
    start = sum(shapes[i][node.axis] for i in ins[:k])
    index = [slice(None)] * len(shapes[concat])
    index[node.axis] = slice(start, start + shapes[ins[k]][node.axis])
    seg[tuple(index)] = 1.0
    plans = []
    stack = [(concat, seg.reshape(-1))]
    while stack:
        name, ind = stack.pop()
        for user in g.users_of(name):
            un = g.nodes[user]
            if un.kind in _COMMUTE:
                m = linear_maps.matrix(un, [shapes[name]], shapes[user], 0, user)
                out = m @ ind
                # Every output element must come wholly from the segment or wholly from outside.
                share = out / np.maximum(m @ np.ones_like(ind), 1e-300)
                if not np.all(np.isclose(share, 0.0) | np.isclose(share, 1.0)):
                    return False
                stack.append((user, np.isclose(share, 1.0).astype(np.float64)))
            elif un.kind == "Dense":
                plans.append((user, ind.astype(bool), None))
            elif un.kind == "Conv2d":
                per_channel = ind.reshape(shapes[name][0], -1)
                if not np.all((per_channel == per_channel[:, :1])):
                    return False
                plans.append((user, None, per_channel[:, 0].astype(bool)))
            else:
                return False
    for user, cols, channels in plans:
        un = g.nodes[user]
        w = un.weight.copy()
        if cols is not None:
            w[:, cols] *= np.float32(factor)
        else:
            c_out, c_in_g = w.shape[:2]
            per_group = c_out // un.groups
            cin = (np.arange(c_out)[:, None] // per_group) * c_in_g + np.arange(c_in_g)[None, :]
            w = np.where(channels[cin][:, :, None, None], w * np.float32(factor), w).astype(np.float32)
        g.replace(user, un.replace(weight=w))
    return bool(plans)


def _pooled_population(g: Graph, node) -> str | None:
    """The population a max-pool unit population pools (through value-preserving operators)."""
    part = maxpool_part(node)
    src = part.source if part is not None else None
    while src is not None and src in g.nodes and g.nodes[src].kind in ("Flatten", "Reshape", "Transpose"):
        (src,) = g.inputs_of(src)
    if src is not None and src in g.nodes and g.nodes[src].role == "neuron":
        return src
    return None


def balance(graph: Graph, ctx: PassContext) -> Graph:
    if graph.meta.get("balanced"):
        ctx.note(NAME, "graph already balanced; skipped")
        return graph.copy()
    if ctx.calibration is None:
        raise CalibrationError("threshold balancing needs calibration data (snc compile --calib X.npy)")
    g = graph.copy()
    pops = [n for n in g.topological_order() if g.nodes[n].role == "neuron"]
    for name in pops:
        if not is_builtin(g.nodes[name]):
            raise UnsupportedOperator(f"balance rescales IF and LIF thresholds; {g.nodes[name].kind} declares its own "
                                      "parameters (balance the network before choosing that model)", node=name)
    if not pops:
        ctx.note(NAME, "no spiking populations to balance")
        return g
    p = float(ctx.percentile)
    if not 0 < p <= 100:
        raise CalibrationError(f"percentile must lie in (0, 100], got {p}")
    if len(ctx.calibration) == 0:
        raise CalibrationError("the calibration set is empty")
    # The shared calibration analysis (one forward pass, reused by the passes after this one).
    analysis = ctx.analysis
    if analysis.percentile != p:
        analysis.percentile = p
        analysis.invalidate()
    stats = analysis.activity(g, pops)
    n_samples = len(ctx.calibration)
    lambdas: dict[str, float] = {}
    for name in pops:
        node = g.nodes[name]
        st = stats[name]
        pooled = _pooled_population(g, node)
        if pooled is not None and pooled in lambdas:
            # Units of a max-pool construction count in the pooled population's amplitude.
            lam = lambdas[pooled]
        elif st.active_fraction > 0:
            lam = st.lam
        else:
            lam = 1.0
            ctx.note(NAME, f"population {name!r} is never active on the calibration data (threshold left at 1)", node=name)
        ceiling = relu_ceiling(node)
        if ceiling is not None:
            lam = min(lam, float(ceiling))
        lam = max(lam, 1e-12)
        lambdas[name] = lam
        meta = dict(node.meta)
        meta["calibration"] = {
            "lambda": lam,
            "percentile": p,
            "max": st.max,
            "mean": st.mean,
            "active_fraction": st.active_fraction,
            "clipped_fraction": st.clipped_fraction if lam == st.lam else st.clipped(lam),
            "samples": int(n_samples),
        }
        g.replace(name, node.replace(threshold=lam, meta=meta))
    analysis.set_thresholds(lambdas)
    for name in pops:
        scale_outputs(g, name, lambdas[name])
    g.meta["balanced"] = True
    g.meta["percentile"] = p
    ctx.note(
        NAME,
        f"thresholds from the {p:g}th percentile of {n_samples} calibration samples",
        thresholds={k: round(v, 6) for k, v in lambdas.items()},
    )
    g.validate()
    return g
