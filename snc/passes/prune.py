"""``prune``: remove what does not work, and say what it saves.

By default only what is *provably* useless for every input in the declared input range goes:

* Zero synapses (many after quantisation) are not stored and cost no event work: every synapse
  count in snc (simulator fan-out, mapping, energy) counts non-zero weights only. The pass
  reports them per layer.
* Neurons that cannot reach threshold for any input: interval bounds [lo, hi] are propagated
  through the graph (direct inputs in ``input_range``, default the range of the calibration data;
  spikes in [0, 1]; each weighted operator as W+ hi + W- lo; a population that cannot fire emits
  [0, 0]). A neuron whose largest possible input current per step, bias included, is <= 0 never
  leaves v <= 0 < threshold, under any timing and for any T, so it never spikes.
* Neurons none of whose synapses reach a remaining neuron or the readout.

Options:

* Magnitude pruning (``prune_sparsity`` S in [0, 1), off by default): the smallest |w| of each
  weighted layer (``prune_scope="layer"``) or of all of them, each relative to its layer's
  largest (``"global"``), are set to zero, fixed-point mantissas included.
* Activity pruning (``prune_activity``, off by default): neurons that never spike on the
  calibration data, with layer-synchronous timing nor with the chip's one-step synaptic delay,
  are removed too. That says nothing about unseen inputs: with calibration labels a held-back
  part of the calibration data (``prune_holdout``) is not used for it, and the report gives the
  accuracy on that part before and after. The pass proves on the data it used, by simulating
  again under both timings, that every readout value is unchanged (bit for bit in fixed point),
  and refuses a graph that differs.

With ``ctx.verify`` the provable removal is proved the same way on the calibration data, and
the cores and energy per inference saved on the target chip (``hw``, default loihi) are costed
as the ``map`` pass and the cycle model count them. The report says which kinds of pruning ran.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from snc.errors import SncError, UnsupportedOperator
from snc.ir.neurons import is_builtin
from snc.ir import Graph
from snc.ir.annotations import is_maxpool_construct

from . import PassContext
from .options import option

NAME = "prune"


def _range_ok(v) -> bool:
    return len(v) == 2 and all(isinstance(x, (int, float)) for x in v) and v[0] <= v[1]


@dataclass
class Options:
    """Options of ``prune``."""

    prune_sparsity: float | None = option(None, "set this fraction of the smallest weights to zero (magnitude pruning)",
                                          check=lambda v: 0.0 <= v < 1.0, expect="a number in [0, 1) or None")
    prune_scope: str = option("layer", "magnitude pruning per layer or over all layers (relative magnitudes)",
                              choices=("layer", "global"))
    prune_activity: bool = option(False, "also remove neurons that never spike on the calibration data (not proved for unseen inputs)")
    prune_samples: int | None = option(None, "cap on the calibration samples activity pruning simulates",
                                       check=lambda v: v >= 1, expect="an integer >= 1 or None")
    prune_holdout: float = option(0.2, "fraction of labelled calibration data held back from activity pruning, to report accuracy on",
                                  check=lambda v: 0.0 <= v < 1.0, expect="a number in [0, 1)")
    input_range: tuple | list | None = option(None, "(low, high) of every direct input value; default: the calibration data's range",
                                              check=_range_ok, expect="a pair (low, high) with low <= high, or None")


def _fixed_everywhere(g: Graph) -> bool:
    for node in g.nodes.values():
        if (node.kind in ("Dense", "Conv2d") or node.role in ("neuron", "readout")) and getattr(node, "fixed", None) is None:
            return False
    return True


def _weighted_ops(g: Graph) -> list[str]:
    return [n for n in g.topological_order() if g.nodes[n].kind in ("Dense", "Conv2d") and not is_maxpool_construct(g.nodes[n])]


def _zero_synapse_report(g: Graph, ctx: PassContext) -> None:
    for name in _weighted_ops(g):
        node = g.nodes[name]
        w = node.fixed.weight if node.fixed is not None else node.weight
        zeros = int(w.size - np.count_nonzero(w))
        if zeros:
            ctx.note(NAME, f"{name!r}: {zeros} of {w.size} weights are zero ({100 * zeros / w.size:.1f}%): not stored, no event work",
                     node=name, zero_weights=zeros)


def magnitude_prune(g: Graph, sparsity: float, scope: str, ctx: PassContext) -> None:
    if not 0.0 <= sparsity < 1.0:
        raise UnsupportedOperator(f"prune_sparsity must lie in [0, 1), got {sparsity}")
    if scope not in ("layer", "global"):
        raise UnsupportedOperator(f"prune_scope must be 'layer' or 'global', got {scope!r}")
    ops = _weighted_ops(g)
    mags = {}
    for name in ops:
        node = g.nodes[name]
        w = np.abs(node.fixed.weight if node.fixed is not None else node.weight).astype(np.float64)
        mags[name] = w / w.max() if scope == "global" and w.max() > 0 else w
    # Exactly round(S x n) weights go, the smallest first (ties broken by position, so the
    # result is deterministic): per layer, or over all layers' relative magnitudes.
    drops: dict[str, np.ndarray] = {name: np.zeros(mags[name].shape, bool) for name in ops}
    if scope == "global":
        flat = np.concatenate([mags[n].ravel() for n in ops]) if ops else np.zeros(0)
        owner = np.concatenate([np.full(mags[n].size, i) for i, n in enumerate(ops)]) if ops else np.zeros(0, int)
        offset = np.concatenate([np.arange(mags[n].size) for n in ops]) if ops else np.zeros(0, int)
        chosen = np.argsort(flat, kind="stable")[: int(round(sparsity * flat.size))]
        for i, name in enumerate(ops):
            d = drops[name].reshape(-1)
            d[offset[chosen[owner[chosen] == i]]] = True
    else:
        for name in ops:
            d = drops[name].reshape(-1)
            d[np.argsort(mags[name].ravel(), kind="stable")[: int(round(sparsity * d.size))]] = True
    for name in ops:
        node = g.nodes[name]
        drop = drops[name]
        weight = np.where(drop, 0.0, node.weight).astype(np.float32)
        fixed = node.fixed
        if fixed is not None:
            fixed = type(fixed)(weight=np.where(drop, 0, fixed.weight).astype(fixed.weight.dtype),
                                weight_exp=fixed.weight_exp, weight_bits=fixed.weight_bits)
        g.replace(name, node.replace(weight=weight, fixed=fixed))
        ctx.note(NAME, f"{name!r}: magnitude pruning set {int(drop.sum())} of {drop.size} weights to zero "
                       f"({100 * drop.mean():.1f}%)", node=name, pruned_weights=int(drop.sum()))


def _useful(g: Graph, plan, keep: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Neurons with a synapse onto a remaining neuron of a useful population or the readout."""
    out = dict(keep)
    for pop in reversed(plan.populations):
        name = pop.name
        if name not in out:
            continue
        reach = np.zeros(pop.size, dtype=bool)
        for proj in plan.outgoing[name]:
            tgt = g.nodes[proj.target]
            if tgt.role == "readout":
                alive_t = np.ones(proj.matrix.shape[0], dtype=bool)
            else:
                alive_t = out.get(proj.target, np.ones(proj.matrix.shape[0], bool))
            # abs: a neuron's weights may sum to zero over its targets and still reach them
            hits = abs(proj.matrix).T.tocsr() @ alive_t.astype(np.float64)
            reach |= hits != 0
        out[name] = out[name] & reach
    return out


def _equal_results(a, b, fixed: bool) -> bool:
    if not np.array_equal(a.predictions, b.predictions):
        return False
    for name in a.outputs:
        if fixed and not np.array_equal(a.outputs[name], b.outputs[name]):
            return False
        if not fixed and not np.allclose(a.outputs[name], b.outputs[name], rtol=0, atol=1e-6):
            return False
    return True


# float64 sums err by far less than this fraction of their positive part.
_MARGIN = 1e-9


def _interval_bounds(plan, input_range: tuple[float, float]) -> dict[str, np.ndarray]:
    """For every spiking population, which neurons can ever spike (see the module docstring).

    Each projection (the composed synaptic matrix M from a source population S) brings at most
    M+ hi_S + M- lo_S per step; the terms of that bound are split into their positive part P and
    negative part N (float64). A neuron is dead when P == 0 and the bias is <= 0 (a sum of
    non-positive numbers is non-positive in floating point too), or when P exceeds |N| by less
    than nothing even after P is inflated by _MARGIN against rounding."""
    from snc.backends.plan import host_stage

    lo_in, hi_in = float(input_range[0]), float(input_range[1])
    bounds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    can_fire: dict[str, np.ndarray] = {}
    for pop in plan.populations:
        node = pop.node
        if node.role == "input":
            lo, hi = (lo_in, hi_in) if node.encoding == "direct" else (0.0, 1.0)
            bounds[pop.name] = (np.full(pop.size, lo), np.full(pop.size, hi))
            continue
        if node.role != "neuron":
            continue
        if not is_builtin(node):
            # A declared model's dynamics are its own (ir/models.py): nothing here proves that
            # a neuron of it cannot fire, so none is removed.
            fires = np.ones(pop.size, bool) if node.keep is None else node.keep.reshape(-1).copy()
            can_fire[pop.name] = fires
            bounds[pop.name] = (np.zeros(pop.size), fires.astype(np.float64))
            continue
        pos = np.zeros(pop.size)
        neg = np.zeros(pop.size)
        for proj in pop.projections:
            # A recurrent source (later in the order) is not bounded yet: any neuron may spike.
            lo, hi = bounds.get(proj.source, (np.zeros(proj.shape[1]), np.ones(proj.shape[1])))
            m = proj.matrix.tocsr()
            mp, mn = m.maximum(0), m.minimum(0)
            p_pre = mp @ np.maximum(hi, 0) + mn @ np.minimum(lo, 0)
            n_pre = mp @ np.minimum(hi, 0) + mn @ np.maximum(lo, 0)
            if proj.host_pool is not None:
                # The host's window maximum: at most the largest positive part plus the largest
                # (least negative) negative part of the window (a sound over-estimate).
                p_pre, n_pre = (host_stage(plan, proj, torch.from_numpy(v[None])).numpy()[0] for v in (p_pre, n_pre))
            pos += p_pre
            neg += n_pre
        if node.bias is not None:
            b = np.broadcast_to(np.asarray(node.bias, np.float64), pop.shape).reshape(-1)
            pos += np.maximum(b, 0)
            neg += np.minimum(b, 0)
        dead = (pos == 0) | (pos * (1 + _MARGIN) + neg < 0)
        fires = ~dead
        if node.keep is not None:
            fires &= node.keep.reshape(-1)
        can_fire[pop.name] = fires
        bounds[pop.name] = (np.zeros(pop.size), fires.astype(np.float64))
    return can_fire


def _input_range(g: Graph, ctx: PassContext, o: Options) -> tuple[tuple[float, float] | None, str]:
    if o.input_range is not None:
        return (float(o.input_range[0]), float(o.input_range[1])), "declared (option input_range)"
    if not any(g.nodes[n].encoding == "direct" for n in g.input_names):
        return (0.0, 1.0), "spike inputs"
    if ctx.calibration is not None and len(ctx.calibration):
        x = np.asarray(ctx.calibration)
        return (float(x.min()), float(x.max())), "the range of the calibration data (option input_range declares another)"
    return None, "unknown (no calibration data, no input_range)"


def _apply_keep(g: Graph, keep: dict[str, np.ndarray]) -> dict[str, int]:
    removed = {}
    for name, alive in keep.items():
        node = g.nodes[name]
        gone = node.present - int(alive.sum())
        if gone:
            removed[name] = gone
            g.replace(name, node.replace(keep=alive.reshape(node.shape)))
    return removed


def _simulate_both(g: Graph, x: np.ndarray, ctx: PassContext, arithmetic: str, purpose: str):
    # Both timings: layer-synchronous (snc's default) and one-step synaptic delay (the chip's,
    # Lava's). A neuron silent under one can fire under the other.
    return {timing: ctx.simulate(g, x, timesteps=int(ctx.timesteps), arithmetic=arithmetic, timing=timing, purpose=purpose)
            for timing in ("sync", "delay")}


def _prove(g: Graph, references, x: np.ndarray, ctx: PassContext, arithmetic: str, fixed: bool, what: str) -> dict:
    """Simulate the pruned graph under both timings and compare with ``references``; returns the
    new simulations (they describe the pruned graph, so activity pruning can start from them)."""
    checks = {}
    for timing, reference in references.items():
        check = ctx.simulate(g, x, timesteps=int(ctx.timesteps), arithmetic=arithmetic, timing=timing, purpose=f"prune proof ({what})")
        if not _equal_results(reference, check, fixed):
            raise SncError(f"{what} pruning changed the network's outputs on the calibration data ({timing} timing); "
                           "refusing the result (please report)")
        checks[timing] = check
    return checks


def prune(graph: Graph, ctx: PassContext) -> Graph:
    from snc.backends.plan import build_plan

    if not graph.is_spiking:
        raise UnsupportedOperator("prune works on a converted (spiking) graph")
    o = ctx.config(NAME, Options)
    g = graph.copy()
    fixed = _fixed_everywhere(g)
    arithmetic = "fixed" if fixed else "float32"
    t = int(ctx.timesteps)
    kinds = ["zero synapses", "provably dead neurons (interval bounds)", "neurons reaching no output"]
    x_all = None if ctx.calibration is None else np.asarray(ctx.calibration)
    if o.prune_sparsity:
        kinds.append(f"magnitude ({o.prune_sparsity:g}, {o.prune_scope})")
        x = x_all if x_all is None else x_all[: o.prune_samples]
        before = ctx.simulate(g, x, timesteps=t, arithmetic=arithmetic, purpose="magnitude pruning (before)") if x is not None else None
        magnitude_prune(g, float(o.prune_sparsity), o.prune_scope, ctx)
        ctx.analysis.invalidate()
        if before is not None:
            after = ctx.simulate(g, x, timesteps=t, arithmetic=arithmetic, purpose="magnitude pruning (after)")
            agree = float(np.mean(before.predictions == after.predictions))
            msg = f"after magnitude pruning predictions agree on {100 * agree:.1f}% of {len(x)} calibration samples"
            data = {"agreement": agree}
            labels = ctx.options.get("labels")
            if labels is not None:
                y = np.asarray(labels)[: len(x)]
                data.update(accuracy_before=float(np.mean(before.predictions == y)), accuracy_after=float(np.mean(after.predictions == y)))
                msg += f"; accuracy {100 * data['accuracy_before']:.2f}% -> {100 * data['accuracy_after']:.2f}%"
            ctx.note(NAME, msg, **data)

    plan_before = build_plan(g)
    # 1. Provably dead: cannot reach threshold for any input in range.
    rng, rng_source = _input_range(g, ctx, o)
    keep: dict[str, np.ndarray] = {}
    if rng is not None:
        keep = _interval_bounds(plan_before, rng)
    else:
        for pop in plan_before.populations:
            if pop.node.role == "neuron":
                keep[pop.name] = np.ones(pop.size, bool) if pop.node.keep is None else pop.node.keep.reshape(-1).copy()
    keep = _useful(g, plan_before, keep)
    provable = {n: m.copy() for n, m in keep.items()}
    verify_x = None if x_all is None else x_all[: o.prune_samples]
    references = None
    if ctx.verify and verify_x is not None and any(int(m.sum()) < g.nodes[n].present for n, m in provable.items()):
        references = _simulate_both(g, verify_x, ctx, arithmetic, "prune proof (reference)")
    removed_provable = _apply_keep(g, provable)
    proved = None  # simulations of the graph as it is now, on verify_x
    if references is not None:
        proved = _prove(g, references, verify_x, ctx, arithmetic, fixed, "provable")
    ctx.note(NAME, f"provably dead for every input in [{rng[0]:.4g}, {rng[1]:.4g}] ({rng_source}) or reaching no output: "
                   f"{sum(removed_provable.values())} neuron(s)" if rng is not None else
                   f"input range {rng_source}: only neurons reaching no output removed ({sum(removed_provable.values())})",
             neurons_removed=int(sum(removed_provable.values())), kind="provable")
    _zero_synapse_report(g, ctx)

    # 2. Activity pruning (opt-in).
    removed_activity: dict[str, int] = {}
    if o.prune_activity:
        kinds.append("activity on calibration data")
        if x_all is None:
            ctx.note(NAME, "no calibration data: activity pruning skipped")
        else:
            labels = ctx.options.get("labels")
            n_hold = int(round(o.prune_holdout * len(x_all))) if labels is not None else 0
            x_used = x_all[: len(x_all) - n_hold]
            x = x_used[: o.prune_samples]
            hold = x_all[len(x_all) - n_hold:] if n_hold else None
            held_before = ctx.simulate(g, hold, timesteps=t, arithmetic=arithmetic, purpose="held-back accuracy (before)") if n_hold else None
            reuse = proved is not None and len(x) == len(verify_x) and np.array_equal(x, verify_x)
            references = proved if reuse else _simulate_both(g, x, ctx, arithmetic, "activity pruning")
            plan_now = build_plan(g)
            active: dict[str, np.ndarray] = {}
            for pop in plan_now.populations:
                if pop.node.role != "neuron":
                    continue
                alive = (references["sync"].populations[pop.name].neuron_spikes > 0) | (references["delay"].populations[pop.name].neuron_spikes > 0)
                if pop.node.keep is not None:
                    alive &= pop.node.keep.reshape(-1)
                active[pop.name] = alive
            active = _useful(g, plan_now, active)
            removed_activity = _apply_keep(g, active)
            ctx.analysis.invalidate()
            if removed_activity:
                _prove(g, references, x, ctx, arithmetic, fixed, "activity")
                ctx.note(NAME, f"activity pruning: {sum(removed_activity.values())} neuron(s) never spiked on {len(x)} calibration "
                               f"samples; proof: re-simulating them ({arithmetic}, T={t}, synchronous and one-step-delay timing) "
                               "gives identical readouts", neurons_removed=int(sum(removed_activity.values())), kind="activity")
            else:
                ctx.note(NAME, f"activity pruning: every neuron spiked on the {len(x)} calibration samples", kind="activity")
            if n_hold:
                y = np.asarray(labels)[len(x_all) - n_hold:]
                held_after = ctx.simulate(g, hold, timesteps=t, arithmetic=arithmetic, purpose="held-back accuracy (after)")
                acc_b = float(np.mean(held_before.predictions == y))
                acc_a = float(np.mean(held_after.predictions == y))
                ctx.note(NAME, f"held-back accuracy ({n_hold} labelled calibration samples activity pruning did not see): "
                               f"{100 * acc_b:.2f}% -> {100 * acc_a:.2f}%", heldout_samples=n_hold,
                         heldout_accuracy_before=acc_b, heldout_accuracy_after=acc_a)
            elif labels is None:
                ctx.note(NAME, "activity pruning without calibration labels: no held-back accuracy (pass --calib-labels)")

    removed = dict(removed_provable)
    for k, v in removed_activity.items():
        removed[k] = removed.get(k, 0) + v
    ctx.note(NAME, f"pruning kinds that ran: {', '.join(kinds)}", kinds=kinds)
    if not removed:
        g.meta["pruned"] = {"neurons_removed": 0, "synapses_removed": 0, "kinds": kinds}
        return g
    plan_after = build_plan(g)
    syn_before = {p.name: sum(q.synapses for q in p.projections) for p in plan_before.populations}
    syn_after = {p.name: sum(q.synapses for q in p.projections) for p in plan_after.populations}
    total_syn = sum(syn_before.values()) - sum(syn_after.values())
    for name, gone in removed.items():
        n_in = syn_before[name] - syn_after[name]
        n_out = sum(q.synapses for q in plan_before.outgoing[name]) - sum(q.synapses for q in plan_after.outgoing[name])
        ctx.note(NAME, f"{name!r}: removed {gone} of {g.nodes[name].size} neurons, {n_in} incoming and {n_out} outgoing synapses",
                 node=name, neurons_removed=gone, synapses_in=int(n_in), synapses_out=int(n_out))
    ctx.note(NAME, f"removed {sum(removed.values())} neuron(s) and {total_syn} synapse(s) in total",
             neurons_removed=int(sum(removed.values())), synapses_removed=int(total_syn), kind="total")
    if ctx.verify and x_all is not None:
        _savings(graph, g, ctx, x_all, t)
    g.meta["pruned"] = {"neurons_removed": int(sum(removed.values())), "synapses_removed": int(total_syn), "kinds": kinds}
    return g


def _savings(before: Graph, after: Graph, ctx: PassContext, x: np.ndarray, t: int) -> None:
    """Synaptic memory, cores and energy per inference saved on the target chip."""
    from snc.hw import load_profile

    try:
        profile = load_profile(ctx.options.get("hw", "loihi"))
        if profile.kind != "neuromorphic":
            return
        sample = x[:64]
        a = ctx.estimate(before, sample, hw=[profile], timesteps=t, calibration=sample)
        b = ctx.estimate(after, sample, hw=[profile], timesteps=t, calibration=sample)
    except SncError as exc:  # e.g. the network does not fit the chip: savings cannot be costed
        ctx.note(NAME, f"savings on the chip not estimated: {exc.message}")
        return
    ta, tb = a.doc["totals"], b.doc["totals"]
    mem_a = sum(r["memory_bits"] for r in a.mapped[profile.name].meta["mapping"]["cores"])
    mem_b = sum(r["memory_bits"] for r in b.mapped[profile.name].meta["mapping"]["cores"])
    ctx.note(
        NAME,
        f"on {profile.name}: synaptic memory {mem_a} -> {mem_b} bits, cores {ta['cores']} -> {tb['cores']}, "
        f"energy per inference {ta['energy_j']:.4g} -> {tb['energy_j']:.4g} J (dynamic {ta['dynamic_energy_j']:.4g} -> "
        f"{tb['dynamic_energy_j']:.4g} J)",
        memory_bits_saved=int(mem_a - mem_b), cores_saved=int(ta["cores"] - tb["cores"]),
        energy_saved_j=float(ta["energy_j"] - tb["energy_j"]),
    )
