"""The simulator's fast paths change no result: the compiled one-pass IF step (fused.py) against
the numpy form, the integer evaluation of the spiking max-pool construction against float
evaluation and against the plain-Python reference, and reused plans against fresh ones."""
from __future__ import annotations

import numpy as np
import pytest

import snc.ir as ir
from snc.backends.plan import build_plan
from snc.backends.sim import fused, neurons, simulate
from snc.backends.sim import simulator as simulator_mod
from snc.passes import CONVERSION
from snc.pipeline import compile as snc_compile

from . import reference_sim


def test_numba_is_there():
    # numba is a dependency: without it every simulation silently takes the slow numpy form.
    assert fused.AVAILABLE, "numba is not importable (or SNC_FUSED=0 is set)"


def _if_node(rng, n, *, bias, keep, per_neuron_th, reset):
    th = (rng.integers(2, 9, size=n) / 4).astype(np.float32) if per_neuron_th else np.float32(0.75)
    node = ir.IF(shape=(n,), threshold=th, reset=reset,
                 bias=(rng.normal(size=n) * 0.3).astype(np.float32) if bias else None)
    if keep:
        node.keep = rng.random(n) < 0.8
    return node


CURRENTS = {
    "float32": lambda rng, shape: (rng.normal(size=shape) * 0.6).astype(np.float32) * (rng.random(shape) < 0.7),
    "int8": lambda rng, shape: rng.integers(-3, 4, size=shape).astype(np.int8),
    "int16": lambda rng, shape: rng.integers(-300, 300, size=shape).astype(np.int16),
    "int32": lambda rng, shape: rng.integers(-2**25, 2**25, size=shape).astype(np.int32),
}


def _run(node, current, n, b, *, fused_on, mask, constant):
    old = neurons.FUSED["on"]
    neurons.FUSED["on"] = fused_on
    try:
        pop = neurons.FloatNeurons(node, (n,), b)
        outs = []
        for chunk in current:
            tc = chunk.shape[0]
            spikes = np.empty((tc, b, n), dtype=bool)
            m = np.empty((tc, b, n), dtype=bool) if mask else None
            if constant:
                active = pop.run_constant(chunk[0].astype(np.float32), spikes, m)
            else:
                active = pop.run(chunk.copy(), spikes, m)
            outs.append((spikes, np.asarray(active), m))
        return pop.v.copy(), outs
    finally:
        neurons.FUSED["on"] = old


CASES = [(dtype, False, False, False, "subtract", False, False) for dtype in sorted(CURRENTS)] + [
    (dtype, True, False, True, "subtract", True, False) for dtype in sorted(CURRENTS)] + [
    (dtype, False, True, False, "zero", False, False) for dtype in sorted(CURRENTS)] + [
    (dtype, True, True, True, "zero", True, False) for dtype in sorted(CURRENTS)] + [
    ("float32", True, False, False, "subtract", True, True),  # constant (direct) input: float32 only
    ("float32", False, True, True, "subtract", False, True),
]


@pytest.mark.parametrize("dtype,bias,keep,per_neuron_th,reset,mask,constant", CASES)
def test_fused_if_step_is_bit_identical_to_the_numpy_form(dtype, bias, keep, per_neuron_th, reset, mask, constant):
    rng = np.random.default_rng(CASES.index((dtype, bias, keep, per_neuron_th, reset, mask, constant)))
    n, b = 37, 5
    node = _if_node(rng, n, bias=bias, keep=keep, per_neuron_th=per_neuron_th, reset=reset)
    current = [CURRENTS[dtype](rng, (tc, b, n)) for tc in (1, 4, 3)]
    v_ref, ref = _run(node, current, n, b, fused_on=False, mask=mask, constant=constant)
    v_got, got = _run(node, current, n, b, fused_on=True, mask=mask, constant=constant)
    assert v_ref.tobytes() == v_got.tobytes()  # every voltage bit
    spiked = 0
    for (s_ref, a_ref, m_ref), (s_got, a_got, m_got) in zip(ref, got):
        np.testing.assert_array_equal(s_got, s_ref)
        np.testing.assert_array_equal(a_got, a_ref)
        if mask:
            np.testing.assert_array_equal(m_got, m_ref)
        spiked += int(s_ref.sum())
    assert spiked > 0  # the case exercises spikes and resets


def _maxpool_cnn(rng):
    """Conv-IF-Conv-IF-MaxPool(2)-Conv-IF-MaxPool(3, stride 2)-Flatten-Dense: the max pools follow
    spiking layers, so conversion builds the spiking tournament."""
    def w(*shape):
        return (rng.integers(-4, 5, size=shape) / 4).astype(np.float32)

    g = ir.Graph("mp")
    g.add("x", ir.Input(shape=(2, 10, 10)))
    g.add("c1", ir.Conv2d(weight=w(4, 2, 3, 3), bias=w(4)), ["x"])
    g.add("r1", ir.ReLU(), ["c1"])
    g.add("c2", ir.Conv2d(weight=w(4, 4, 3, 3), padding=1), ["r1"])
    g.add("r2", ir.ReLU(), ["c2"])
    g.add("mp", ir.MaxPool2d(kernel=2, stride=2), ["r2"])  # 8x8 -> 4x4
    g.add("c3", ir.Conv2d(weight=w(3, 4, 1, 1)), ["mp"])
    g.add("r3", ir.ReLU(), ["c3"])
    g.add("mp2", ir.MaxPool2d(kernel=3, stride=1), ["r3"])  # 4x4 -> 2x2, a 9-element tournament
    g.add("f", ir.Flatten(), ["mp2"])
    g.add("d", ir.Dense(weight=w(3, 12)), ["f"])
    g.outputs = ["d"]
    return g


@pytest.mark.parametrize("balance", [False, True])
def test_integer_maxpool_evaluation_changes_no_spike(monkeypatch, balance):
    rng = np.random.default_rng(11)
    ann = _maxpool_cnn(rng)
    x = rng.random((24, 2, 10, 10)).astype(np.float32)
    passes = CONVERSION if balance else tuple(p for p in CONVERSION if p != "balance")
    snn = snc_compile(ann, x, passes=passes)
    assert any(".max" in n for n in snn.nodes), "the spiking max-pool construction is expected"
    fast = simulate(snn, x, timesteps=24, rasters=range(len(x)))
    sim = simulator_mod.Simulation(snn, arithmetic="float32", timing="sync", rate_seed=None)
    assert sim.integer_leaves, "some projections should take the integer path"
    # The same simulation with the integer path off and the numpy neuron step.
    monkeypatch.setattr(simulator_mod, "integer_shared_group", lambda node: None)
    monkeypatch.setitem(neurons.FUSED, "on", False)
    slow = simulate(snn, x, timesteps=24, rasters=range(len(x)))
    for pop, st in fast.populations.items():
        other = slow.populations[pop]
        np.testing.assert_array_equal(st.spikes, other.spikes, err_msg=pop)
        np.testing.assert_array_equal(st.synops, other.synops, err_msg=pop)
        np.testing.assert_array_equal(st.active_updates, other.active_updates, err_msg=pop)
        np.testing.assert_array_equal(st.neuron_spikes, other.neuron_spikes, err_msg=pop)
    for name in fast.outputs:
        assert fast.outputs[name].tobytes() == slow.outputs[name].tobytes()
    # And against the plain-Python reference, spike for spike, for a few samples.
    for i in range(3):
        rasters, _ = reference_sim.run(snn, x[i], 24, "sync")
        for pop, ref in rasters.items():
            np.testing.assert_array_equal(fast.populations[pop].rasters[i], ref, err_msg=f"sample {i} {pop}")


def test_a_reused_plan_follows_in_place_changes():
    rng = np.random.default_rng(5)
    ann = _maxpool_cnn(rng)
    x = rng.random((6, 2, 10, 10)).astype(np.float32)
    snn = snc_compile(ann, x, passes=CONVERSION)
    first = simulate(snn, x, timesteps=16)
    assert build_plan(snn) is build_plan(snn.copy())  # same content: the kept plan
    # Change a weight in place: the next simulation must see it, as a fresh copy does.
    conv = next(n for n, node in snn.nodes.items() if node.kind == "Conv2d" and node.groups == 1 and n != "c1")
    snn.nodes[conv].weight *= 2.0
    again = simulate(snn, x, timesteps=16)
    fresh = simulate(snn.copy(), x, timesteps=16)
    for pop in again.populations:
        np.testing.assert_array_equal(again.populations[pop].spikes, fresh.populations[pop].spikes)
    assert any(not np.array_equal(again.populations[p].spikes, first.populations[p].spikes) for p in first.populations)
