"""``prune``: activity pruning proved by re-simulation, magnitude pruning, and what they save.

Specification (snc/passes/prune.py):

* activity pruning removes (``keep`` = False) the neurons that never spike on the calibration data
  and then those none of whose synapses reach a remaining neuron or the readout; every readout
  value on that data stays bit for bit the same in fixed point, and a result that differs is
  refused. The expected masks and the synapse counts of the report are recomputed here from the
  simulated spike counts and the integer weights;
* with every population on one Loihi core before and after, the dynamic energy per inference
  drops by exactly the removed neurons' updates (active ones at E_active, inactive ones at
  E_inactive) plus the synaptic operations that targeted them (E_synop), counted here from the
  rasters and the weights of the unpruned network;
* magnitude pruning zeroes the requested fraction of each layer's weights (or of all of them,
  each relative to its layer's largest), fixed mantissas included; S = 0 changes nothing;
* the masks reach the mapping (only kept neurons take core space), the artifact, and the
  analog (rate-limit) evaluation.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import snc
import snc.ir as ir
from snc.backends import analog
from snc.backends.sim import simulate
from snc.errors import InvalidOption, SncError, UnsupportedOperator
from snc.estimate import estimate
from snc.hw import load_profile, parse_profile
from snc.passes import CONVERSION, PassContext, get
from snc.ir.annotations import blocks

T = 32
HIDDEN = ("relu1", "relu2")
WEIGHTS = {"fc1": ("x", "relu1"), "fc2": ("relu1", "relu2"), "fc3": ("relu2", "readout")}  # op: (source, target)


def prunable_ann(seed: int = 0) -> tuple[ir.Graph, np.ndarray]:
    """8 -> 12 -> 10 -> 3 with neurons built to be removed:

    relu1[0]  negative weights and bias: never fires, its input is never zero (always active);
    relu1[1]  negative weights, no bias: never fires;
    relu1[2]  fires, but its column of fc2 is zero: it reaches nothing;
    relu2[0]  negative weights and bias: never fires (always active);
    relu2[1]  negative weights, no bias: never fires, active only when relu1 spikes reach it.
    """
    rng = np.random.default_rng(seed)
    g = ir.Graph("prunable")
    g.add("x", ir.Input(shape=(8,)))
    w1 = rng.normal(size=(12, 8)).astype(np.float32)
    b1 = (rng.normal(size=12) * 0.1).astype(np.float32)
    w1[0], b1[0] = -np.abs(w1[0]), -1.0
    w1[1], b1[1] = -np.abs(w1[1]), 0.0
    w1[2], b1[2] = np.abs(w1[2]), 0.5
    g.add("fc1", ir.Dense(weight=w1, bias=b1), ["x"])
    g.add("relu1", ir.ReLU(), ["fc1"])
    w2 = (rng.normal(size=(10, 12)) * 0.5).astype(np.float32)
    b2 = (rng.normal(size=10) * 0.1).astype(np.float32)
    w2[:, 2] = 0.0
    w2[0], b2[0] = -np.abs(w2[0]), -0.5
    w2[1], b2[1] = -np.abs(w2[1]), 0.0
    g.add("fc2", ir.Dense(weight=w2, bias=b2), ["relu1"])
    g.add("relu2", ir.ReLU(), ["fc2"])
    g.add("fc3", ir.Dense(weight=rng.normal(size=(3, 10)).astype(np.float32), bias=np.zeros(3, np.float32)), ["relu2"])
    g.outputs = ["fc3"]
    return g, rng.random((40, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def network():
    """The quantised network, its calibration data, and the activity-pruned result."""
    ann, x = prunable_ann()
    q = snc.compile(ann, x, passes=list(CONVERSION) + ["quantize"], timesteps=T)
    assert list(q.nodes) == ["x", "fc1", "relu1", "fc2", "relu2", "fc3", "readout"]
    ctx = PassContext(calibration=x, timesteps=T, options={"prune_activity": True})
    pruned = get("prune")(q, ctx)
    return q, x, pruned, ctx


def mantissas(g: ir.Graph, op: str) -> np.ndarray:
    return g.nodes[op].fixed.weight.astype(np.int64)


def masks(g: ir.Graph) -> dict[str, np.ndarray]:
    out = {name: np.ones(int(np.prod(node.shape)), bool) for name, node in g.nodes.items() if node.role in ("input", "neuron", "readout")}
    out.update({n: g.nodes[n].keep.reshape(-1) for n in HIDDEN if g.nodes[n].keep is not None})
    return out


def synapses(g: ir.Graph, op: str, keep: dict[str, np.ndarray]) -> int:
    src, dst = WEIGHTS[op]
    w = mantissas(g, op)
    return int(np.count_nonzero(w[keep[dst]][:, keep[src]]))


# ---------------------------------------------------------------------------------------------
# Default pruning: only what is provably dead for every input in range.


def test_default_pruning_removes_exactly_the_neurons_built_to_be_provably_dead():
    ann, x = prunable_ann()
    q = snc.compile(ann, x, passes=list(CONVERSION) + ["quantize"], timesteps=T)
    ctx = PassContext(calibration=x, timesteps=T)
    pruned = get("prune")(q, ctx)
    # By construction (see prunable_ann), for x in [0, 1]^8: relu1[0], relu1[1], relu2[0] and
    # relu2[1] have no positive input path and no positive bias; relu1[2] reaches nothing.
    want1 = np.ones(12, bool)
    want1[[0, 1, 2]] = False
    want2 = np.ones(10, bool)
    want2[[0, 1]] = False
    np.testing.assert_array_equal(pruned.nodes["relu1"].keep, want1)
    np.testing.assert_array_equal(pruned.nodes["relu2"].keep, want2)
    kinds = [e for e in ctx.report if e.get("kinds")][0]["kinds"]
    assert not any("activity" in k for k in kinds)
    # Unseen inputs anywhere in the range: identical readouts, bit for bit, under both timings.
    unseen = np.random.default_rng(7).random((200, 8)).astype(np.float32)
    unseen[:20] = np.round(unseen[:20])  # corners of the box
    for timing in ("sync", "delay"):
        a = simulate(q, unseen, timesteps=T, arithmetic="fixed", timing=timing)
        b = simulate(pruned, unseen, timesteps=T, arithmetic="fixed", timing=timing)
        np.testing.assert_array_equal(a.outputs["readout"], b.outputs["readout"])


def test_a_neuron_that_can_fire_for_some_input_in_range_is_kept_even_if_silent_on_the_data():
    g = ir.Graph("box")
    g.add("x", ir.Input(shape=(2,)))
    # h0 = relu(x0 - 0.9): silent on data below 0.9, fires for x0 near 1; h1 = relu(-x1): dead.
    g.add("fc1", ir.Dense(weight=np.array([[1.0, 0.0], [0.0, -1.0]], np.float32), bias=np.array([-0.9, 0.0], np.float32)), ["x"])
    g.add("h", ir.ReLU(), ["fc1"])
    g.add("fc2", ir.Dense(weight=np.ones((2, 2), np.float32)), ["h"])
    g.outputs = ["fc2"]
    data = np.random.default_rng(0).random((64, 2)).astype(np.float32) * 0.8
    snn = snc.compile(g, np.concatenate([data, [[1.0, 1.0]]]).astype(np.float32), passes=list(CONVERSION))
    ctx = PassContext(calibration=data, timesteps=T, options={"input_range": (0.0, 1.0)})
    pruned = get("prune")(snn, ctx)
    np.testing.assert_array_equal(pruned.nodes["h"].keep, [True, False])
    # With the data's own range [0, 0.8) h0 cannot fire either.
    pruned = get("prune")(snn, PassContext(calibration=data, timesteps=T))
    np.testing.assert_array_equal(pruned.nodes["h"].keep, [False, False])


# ---------------------------------------------------------------------------------------------
# Activity pruning (opt-in).


def test_never_spiking_and_unreaching_neurons_are_removed(network):
    q, x, pruned, _ = network
    spikes = simulate(q, x, timesteps=T, arithmetic="fixed")
    fired = {n: spikes.populations[n].neuron_spikes > 0 for n in HIDDEN}
    # Reachability, from the readout backwards, over the integer weights.
    alive2 = fired["relu2"] & (np.abs(mantissas(q, "fc3")).sum(axis=0) > 0)
    alive1 = fired["relu1"] & (np.abs(mantissas(q, "fc2"))[alive2].sum(axis=0) > 0)
    np.testing.assert_array_equal(pruned.nodes["relu1"].keep, alive1)
    np.testing.assert_array_equal(pruned.nodes["relu2"].keep, alive2)
    # The neurons built to go are gone (relu1[2] fires, but reaches nothing), the rest stay mostly.
    assert not alive1[:3].any() and fired["relu1"][2]
    assert not alive2[:2].any()
    assert alive1[3:].sum() >= 6 and alive2[2:].sum() >= 5
    assert q.nodes["relu1"].keep is None  # the input graph is untouched


def test_readouts_on_the_calibration_data_are_bit_identical(network):
    q, x, pruned, _ = network
    before = simulate(q, x, timesteps=T, arithmetic="fixed")
    after = simulate(pruned, x, timesteps=T, arithmetic="fixed")
    np.testing.assert_array_equal(after.outputs["readout"], before.outputs["readout"])
    np.testing.assert_array_equal(after.predictions, before.predictions)
    for n in HIDDEN:  # the remaining neurons spike exactly as before, the removed ones never
        keep = pruned.nodes[n].keep
        np.testing.assert_array_equal(after.populations[n].neuron_spikes[keep], before.populations[n].neuron_spikes[keep])
        assert not after.populations[n].neuron_spikes[~keep].any()


def test_the_report_counts_removed_neurons_and_synapses_per_layer(network):
    q, _, pruned, ctx = network
    before, after = masks(q), masks(pruned)
    entries = {e["node"]: e for e in ctx.report if "neurons_removed" in e and "node" in e}
    assert set(entries) == set(HIDDEN)
    lost = {op: synapses(q, op, before) - synapses(q, op, after) for op in WEIGHTS}
    assert all(v > 0 for v in lost.values()), lost
    expect = {"relu1": (lost["fc1"], lost["fc2"]), "relu2": (lost["fc2"], lost["fc3"])}
    for name, (n_in, n_out) in expect.items():
        e = entries[name]
        assert e["neurons_removed"] == int(np.count_nonzero(~after[name]))
        assert (e["synapses_in"], e["synapses_out"]) == (n_in, n_out), name
    (total,) = [e for e in ctx.report if e.get("kind") == "total"]
    assert total["neurons_removed"] == sum(int(np.count_nonzero(~after[n])) for n in HIDDEN) >= 5
    assert total["synapses_removed"] == sum(lost.values())
    assert {k: pruned.meta["pruned"][k] for k in ("neurons_removed", "synapses_removed")} == {
        "neurons_removed": total["neurons_removed"], "synapses_removed": sum(lost.values())}
    assert any("activity" in k for k in pruned.meta["pruned"]["kinds"])
    # Zero synapses are reported per layer: fc2's zero column at least.
    zeros = {e["node"]: e["zero_weights"] for e in ctx.report if "zero_weights" in e}
    assert zeros["fc2"] == int(np.count_nonzero(mantissas(q, "fc2") == 0)) >= 10


def test_a_result_that_differs_on_the_calibration_data_is_refused(network, monkeypatch):
    """The proof must notice one LSB of one readout value: the re-simulation of the pruned graph
    is made to differ by exactly that (the predictions stay the same)."""
    import snc.backends.sim as sim

    q, x, _, _ = network
    real = sim.simulate

    def one_lsb_off(graph, data, **kw):
        result = real(graph, data, **kw)
        if graph.nodes["relu1"].keep is not None:  # the check run, on the pruned graph
            fx = graph.nodes["readout"].fixed
            result.outputs["readout"][0, 0] += fx.scale / 64.0 / kw["timesteps"]
        return result

    monkeypatch.setattr(sim, "simulate", one_lsb_off)
    with pytest.raises(SncError, match="refusing"):
        get("prune")(q, PassContext(calibration=x, timesteps=T))


def test_the_proof_passes_unchanged_results_in_float_arithmetic_too():
    """Without fixed point the proof compares float32 readouts; on the unquantised network the
    same neurons go and the readouts stay within the tolerance."""
    ann, x = prunable_ann()
    snn = snc.compile(ann, x, passes=CONVERSION, timesteps=T)
    ctx = PassContext(calibration=x, timesteps=T)
    pruned = get("prune")(snn, ctx)
    assert not pruned.nodes["relu1"].keep[:3].any() and not pruned.nodes["relu2"].keep[:2].any()
    a, b = simulate(snn, x, timesteps=T), simulate(pruned, x, timesteps=T)
    np.testing.assert_allclose(b.outputs["readout"], a.outputs["readout"], rtol=0, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Energy.


def test_dynamic_energy_drops_by_the_removed_updates_and_synaptic_operations(network):
    q, x, pruned, _ = network
    loihi = load_profile("loihi")
    data = x[:12]
    mapped = get("map")(q, PassContext(calibration=x[:16], timesteps=T, options={"hw": "loihi", "pack": False}))
    for name in ("relu1", "relu2", "readout"):  # one core each: cores, messages, routes stay
        assert len(blocks(mapped, name)) == 1
    after = pruned.copy()
    after.meta["mapping"] = mapped.meta["mapping"]
    e_before = estimate(mapped, data, hw=["loihi"], timesteps=T)
    e_after = estimate(after, data, hw=["loihi"], timesteps=T)
    tb, ta = e_before.doc["totals"], e_after.doc["totals"]
    assert ta["cores"] == tb["cores"] == 3
    np.testing.assert_array_equal(e_after.costs["loihi"]["per_core"]["msgs"], e_before.costs["loihi"]["per_core"]["msgs"])

    # From scratch: the float32, layer-synchronous run the estimate makes, rasters of every sample.
    n = len(data)
    run = simulate(q, data, timesteps=T, rasters=range(n))
    w1, b1 = q.nodes["fc1"].weight.astype(np.float64), q.nodes["relu1"].bias.astype(np.float64).reshape(-1)
    w2 = q.nodes["fc2"].weight.astype(np.float64)
    b2 = np.zeros(10) if q.nodes["relu2"].bias is None else q.nodes["relu2"].bias.astype(np.float64).reshape(-1)
    gone1, gone2 = ~pruned.nodes["relu1"].keep, ~pruned.nodes["relu2"].keep
    active = inactive = synops = 0
    for i in range(n):
        # relu1 is fed by the analog input: the same current every step (its MACs are the host's).
        cur1 = np.broadcast_to(w1 @ data[i] + b1, (T, 12))[:, gone1]
        s1 = run.populations["relu1"].rasters[i].astype(np.float64)  # (T, 12)
        cur2 = (s1 @ w2.T + b2)[:, gone2]
        for cur in (cur1, cur2):
            active += int(np.count_nonzero(cur))
            inactive += int(cur.size - np.count_nonzero(cur))
        synops += int((s1 @ (w2[gone2] != 0).T).sum())
    assert active > 0 and inactive > 0 and synops > 0
    expected = (active * loihi["energy_neuron_active"] + inactive * loihi["energy_neuron_inactive"]
                + synops * loihi["energy_synop"]) / n
    assert tb["dynamic_energy_j"] - ta["dynamic_energy_j"] == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------------------------------------
# Magnitude pruning.


def magnitude(q: ir.Graph, x: np.ndarray | None, sparsity: float, scope: str) -> tuple[ir.Graph, PassContext]:
    ctx = PassContext(calibration=x, timesteps=T, options={"prune_sparsity": sparsity, "prune_scope": scope, "prune_activity": False})
    return get("prune")(q, ctx), ctx


@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.9])
def test_layer_scope_zeroes_the_requested_fraction_of_each_layer(network, sparsity):
    q, x, _, _ = network
    pruned, ctx = magnitude(q, x, sparsity, "layer")
    stated = {e["node"]: e["pruned_weights"] for e in ctx.report if "pruned_weights" in e}
    for op in WEIGHTS:
        m0, m1 = mantissas(q, op), mantissas(pruned, op)
        want = round(sparsity * m0.size)
        assert int(np.count_nonzero(m0 == 0)) < want  # the pass has something to do
        assert int(np.count_nonzero(m1 == 0)) == want == stated[op], op
        # Fixed and float agree, and what remains is untouched.
        np.testing.assert_array_equal(pruned.nodes[op].weight == 0, m1 == 0)
        np.testing.assert_array_equal(m1[m1 != 0], m0[m1 != 0])
        np.testing.assert_array_equal(pruned.nodes[op].weight[m1 != 0], q.nodes[op].weight[m1 != 0])
        # The smallest magnitudes went.
        assert np.abs(m0[m1 == 0]).max() <= np.abs(m0[m1 != 0]).min(), op
    # The agreement it reports is the one of the two simulations.
    (entry,) = [e for e in ctx.report if "agreement" in e]
    a = simulate(q, x, timesteps=T, arithmetic="fixed").predictions
    b = simulate(pruned, x, timesteps=T, arithmetic="fixed").predictions
    assert entry["agreement"] == float(np.mean(a == b))
    assert not any("activity" in k for k in pruned.meta["pruned"]["kinds"])  # activity pruning was off


@pytest.mark.parametrize("sparsity", [0.3, 0.7])
def test_global_scope_drops_the_smallest_weights_relative_to_each_layers_largest(network, sparsity):
    q, _, _, _ = network
    pruned, _ = magnitude(q, None, sparsity, "global")
    dropped, kept, total, zeros = [], [], 0, 0
    for op in WEIGHTS:
        m0, m1 = mantissas(q, op), mantissas(pruned, op)
        rel = np.abs(m0) / np.abs(m0).max()
        dropped.append(rel[m1 == 0])
        kept.append(rel[m1 != 0])
        np.testing.assert_array_equal(pruned.nodes[op].weight == 0, m1 == 0)
        total, zeros = total + m0.size, zeros + int(np.count_nonzero(m1 == 0))
    assert np.concatenate(dropped).max() <= np.concatenate(kept).min()
    assert zeros >= sparsity * total - 1
    # Layers differ: the fraction is global, not per layer.
    fractions = [float(np.mean(d.size / (d.size + k.size))) for d, k in zip(dropped, kept)]
    assert max(fractions) - min(fractions) > 0.01


def test_zero_sparsity_changes_nothing(network):
    q, x, _, _ = network
    pruned, ctx = magnitude(q, x, 0.0, "layer")
    for op in WEIGHTS:
        np.testing.assert_array_equal(pruned.nodes[op].weight, q.nodes[op].weight)
        np.testing.assert_array_equal(pruned.nodes[op].fixed.weight, q.nodes[op].fixed.weight)
    assert not [e for e in ctx.report if "pruned_weights" in e]


@pytest.mark.parametrize("sparsity", [1.0, -0.1])
def test_a_sparsity_outside_0_to_1_is_refused(network, sparsity):
    q, _, _, _ = network
    with pytest.raises(InvalidOption, match="prune_sparsity"):
        magnitude(q, None, sparsity, "layer")


def test_layer_scope_zeroes_round_s_times_n_weights_when_the_quantile_falls_short():
    g = ir.Graph()
    g.add("x", ir.Input(shape=(13,)))
    w = np.arange(1, 14, dtype=np.float32).reshape(1, 13)
    g.add("d", ir.Dense(weight=w), ["x"])
    g.add("out", ir.Readout(shape=(1,)), ["d"])
    g.outputs = ["out"]
    pruned, _ = magnitude(g, None, 0.9, "layer")
    assert int(np.count_nonzero(pruned.nodes["d"].weight == 0)) == round(0.9 * 13) == 12


# ---------------------------------------------------------------------------------------------
# Masks downstream.


def small_core_profile(neurons_per_core: int):
    base = load_profile("loihi")
    quantities = {k: {"value": v.value, "unit": v.unit, "status": v.status, "source": v.source} for k, v in base.quantities.items()}
    quantities["neurons_per_core"]["value"] = neurons_per_core
    return parse_profile({"name": "small", "title": "test chip", "kind": "neuromorphic", "quantities": quantities}, "<test>")


def test_mapping_gives_core_space_to_kept_neurons_only(network):
    q, _, pruned, _ = network
    hw = small_core_profile(3)
    rows = {}
    for label, g in (("before", q), ("after", pruned)):
        mapped = get("map")(g, PassContext(timesteps=T, options={"hw": hw, "rates": "uniform"}))
        rows[label] = mapped.meta["mapping"]["cores"]
    keep = masks(pruned)
    w = {op: mantissas(q, op) for op in WEIGHTS}
    incoming = {"relu1": ("fc1", "x"), "relu2": ("fc2", "relu1"), "readout": ("fc3", "relu2")}
    for row in rows["after"]:
        pop, a, b = row["population"], row["start"], row["stop"]
        present = keep[pop][a:b]
        assert row["neurons"] == int(present.sum()) <= 3
        op, src = incoming[pop]
        assert row["synapses"] == int(np.count_nonzero(w[op][a:b][present][:, keep[src]])), row
    for pop in HIDDEN:
        cores = {label: sum(1 for r in rows[label] if r["population"] == pop) for label in rows}
        size = int(np.prod(q.nodes[pop].shape))
        assert cores["before"] == math.ceil(size / 3)
        assert cores["after"] == math.ceil(int(keep[pop].sum()) / 3) < cores["before"]
        assert sum(r["neurons"] for r in rows["after"] if r["population"] == pop) == int(keep[pop].sum())


def test_the_artifact_keeps_the_masks(network, tmp_path):
    _, x, pruned, _ = network
    path = ir.save(pruned, tmp_path / "pruned.snir")
    back = ir.load(path)
    for n in HIDDEN:
        assert back.nodes[n].keep.dtype == bool
        np.testing.assert_array_equal(back.nodes[n].keep, pruned.nodes[n].keep)
    r0 = simulate(pruned, x, timesteps=T, arithmetic="fixed")
    r1 = simulate(back, x, timesteps=T, arithmetic="fixed")
    np.testing.assert_array_equal(r1.outputs["readout"], r0.outputs["readout"])


def test_analog_evaluation_gives_zero_for_removed_neurons(network):
    q, x, pruned, _ = network
    full = analog.evaluate(q, x, keep=HIDDEN)
    cut = analog.evaluate(pruned, x, keep=HIDDEN)
    for n in HIDDEN:
        keep = pruned.nodes[n].keep
        assert np.all(cut[n][:, ~keep] == 0)
        np.testing.assert_array_equal(cut[n][:, keep], full[n][:, keep])
    # relu1[2] had a non-zero rate, but nothing downstream saw it: the readout is unchanged.
    assert np.all(full["relu1"][:, 2] > 0)
    np.testing.assert_allclose(cut["readout"], full["readout"], rtol=1e-6, atol=1e-6)
