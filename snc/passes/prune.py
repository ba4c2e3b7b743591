"""``prune``: remove what does not work, and say what it saves.

* Zero synapses (many after quantisation) are not stored and cost no event work: every synapse
  count in snc (simulator fan-out, mapping, energy) counts non-zero weights only. The pass
  reports them per layer.
* Magnitude pruning (``prune_sparsity`` S in [0, 1), off by default): the smallest |w| of each
  weighted layer (``prune_scope="layer"``) or of all of them, each relative to its layer's
  largest (``"global"``), are set to zero, fixed-point mantissas included.
* Activity pruning (on calibration data, default on): neurons that never spike on it, with
  layer-synchronous timing nor with the chip's one-step synaptic delay, are removed (their
  population's ``keep`` mask), then neurons none of whose synapses reach a remaining neuron or
  the readout. Removing a neuron that never fired on the data changes nothing on that data; the
  pass proves it by simulating again under both timings and comparing every readout value (bit
  for bit in fixed point), and refuses to return a graph that differs.

The report gives, per layer, neurons and synapses removed, synaptic memory saved, and the cores
and energy per inference saved on the target chip (``hw``, default loihi) as the ``map`` pass and
the cycle model count them.
"""
from __future__ import annotations

import numpy as np

from snc.errors import SncError, UnsupportedOperator
from snc.ir import Graph

from . import PassContext

NAME = "prune"


def _fixed_everywhere(g: Graph) -> bool:
    for node in g.nodes.values():
        if node.kind in ("Dense", "Conv2d", "IF", "LIF", "Readout") and getattr(node, "fixed", None) is None:
            return False
    return True


def _weighted_ops(g: Graph) -> list[str]:
    return [n for n in g.topological_order() if g.nodes[n].kind in ("Dense", "Conv2d") and not g.nodes[n].meta.get("maxpool_construct")]


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


def prune(graph: Graph, ctx: PassContext) -> Graph:
    from snc.backends.sim import build_plan, simulate

    if not graph.is_spiking:
        raise UnsupportedOperator("prune works on a converted (spiking) graph")
    g = graph.copy()
    opts = ctx.options
    _zero_synapse_report(g, ctx)
    fixed = _fixed_everywhere(g)
    arithmetic = "fixed" if fixed else "float32"
    # The proof runs on the whole calibration set unless the option prune_samples caps it.
    limit = opts.get("prune_samples")
    x = None if ctx.calibration is None else np.asarray(ctx.calibration[: int(limit) if limit else None])
    t = int(ctx.timesteps)
    sparsity = opts.get("prune_sparsity")
    if sparsity:
        before = simulate(g, x, timesteps=t, arithmetic=arithmetic) if x is not None else None
        magnitude_prune(g, float(sparsity), opts.get("prune_scope", "layer"), ctx)
        if before is not None:
            after = simulate(g, x, timesteps=t, arithmetic=arithmetic)
            agree = float(np.mean(before.predictions == after.predictions))
            msg = f"after magnitude pruning predictions agree on {100 * agree:.1f}% of {len(x)} calibration samples"
            data = {"agreement": agree}
            labels = opts.get("labels")
            if labels is not None:
                y = np.asarray(labels)[: len(x)]
                data.update(accuracy_before=float(np.mean(before.predictions == y)), accuracy_after=float(np.mean(after.predictions == y)))
                msg += f"; accuracy {100 * data['accuracy_before']:.2f}% -> {100 * data['accuracy_after']:.2f}%"
            ctx.note(NAME, msg, **data)
    if not opts.get("prune_activity", True):
        return g
    if x is None:
        ctx.note(NAME, "no calibration data: activity pruning skipped")
        return g
    # Both timings: layer-synchronous (snc's default) and one-step synaptic delay (the chip's,
    # Lava's). A neuron silent under one can fire under the other.
    references = {timing: simulate(g, x, timesteps=t, arithmetic=arithmetic, timing=timing) for timing in ("sync", "delay")}
    plan_before = build_plan(g)
    keep: dict[str, np.ndarray] = {}
    for pop in plan_before.populations:
        node = pop.node
        if node.kind not in ("IF", "LIF"):
            continue
        alive = (references["sync"].populations[pop.name].neuron_spikes > 0) | (references["delay"].populations[pop.name].neuron_spikes > 0)
        if node.keep is not None:
            alive &= node.keep.reshape(-1)
        keep[pop.name] = alive
    keep = _useful(g, plan_before, keep)
    removed = {}
    for name, alive in keep.items():
        node = g.nodes[name]
        existing = node.present
        gone = existing - int(alive.sum())
        if gone:
            removed[name] = gone
            g.replace(name, node.replace(keep=alive.reshape(node.shape)))
    if not removed:
        ctx.note(NAME, f"every neuron spiked on the {len(x)} calibration samples and reaches the readout: nothing removed")
        return g
    for timing, reference in references.items():
        check = simulate(g, x, timesteps=t, arithmetic=arithmetic, timing=timing)
        if not _equal_results(reference, check, fixed):
            raise SncError(f"pruning changed the network's outputs on the calibration data ({timing} timing); "
                           "refusing the result (please report)")
    plan_after = build_plan(g)
    syn_before = {p.name: sum(q.synapses for q in p.projections) for p in plan_before.populations}
    syn_after = {p.name: sum(q.synapses for q in p.projections) for p in plan_after.populations}
    total_syn = sum(syn_before.values()) - sum(syn_after.values())
    for name, gone in removed.items():
        n_in = syn_before[name] - syn_after[name]
        n_out = sum(q.synapses for q in plan_before.outgoing[name]) - sum(q.synapses for q in plan_after.outgoing[name])
        ctx.note(NAME, f"{name!r}: removed {gone} of {g.nodes[name].size} neurons (never spiking on the calibration data, "
                       f"or not reaching the readout), {n_in} incoming and {n_out} outgoing synapses",
                 node=name, neurons_removed=gone, synapses_in=int(n_in), synapses_out=int(n_out))
    ctx.note(NAME, f"proof: re-simulating the {len(x)} calibration samples ({arithmetic}, T={t}, synchronous and "
                   "one-step-delay timing) gives identical readouts",
             neurons_removed=int(sum(removed.values())), synapses_removed=int(total_syn))
    _savings(graph, g, ctx, x, t)
    g.meta["pruned"] = {"neurons_removed": int(sum(removed.values())), "synapses_removed": int(total_syn)}
    return g


def _savings(before: Graph, after: Graph, ctx: PassContext, x: np.ndarray, t: int) -> None:
    """Synaptic memory, cores and energy per inference saved on the target chip."""
    from snc.hw import load_profile

    try:
        profile = load_profile(ctx.options.get("hw", "loihi"))
        if profile.kind != "neuromorphic":
            return
        from snc.estimate import estimate

        sample = x[:64]
        a = estimate(before, sample, hw=[profile], timesteps=t, calibration=sample)
        b = estimate(after, sample, hw=[profile], timesteps=t, calibration=sample)
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
