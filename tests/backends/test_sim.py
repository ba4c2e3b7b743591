"""The event simulator against independent references: a plain-Python step-by-step simulator,
hand-computed cases, and the rate limit of converted networks."""
from __future__ import annotations

import numpy as np
import pytest

from snc.passes import CONVERSION
import snc.ir as ir
from snc.backends import analog
from snc.backends.sim import simulate
from snc.backends.sim import synapses as syn
from snc.errors import InvalidData

from . import reference_sim

# ---------------------------------------------------------------------------------------------
# Random small networks with dyadic weights (sums are exact in float32 in any order, so the
# reference and the simulator must agree spike for spike).


def _w(rng, shape, scale=4):
    return (rng.integers(-3, 4, size=shape) / scale).astype(np.float32)


def _bias(rng, shape):
    return (rng.integers(-2, 3, size=shape) / 8).astype(np.float32)


def net_mlp(rng):
    g = ir.Graph("mlp")
    g.add("x", ir.Input(shape=(12,), encoding="spikes"))
    g.add("d1", ir.Dense(weight=_w(rng, (16, 12))), ["x"])
    g.add("h1", ir.IF(shape=(16,), threshold=1.25, reset="subtract", bias=_bias(rng, (16,))), ["d1"])
    g.add("d2", ir.Dense(weight=_w(rng, (10, 16))), ["h1"])
    g.add("h2", ir.LIF(shape=(10,), threshold=0.75, reset="zero", decay_current=0.5, decay_voltage=0.25), ["d2"])
    g.add("d3", ir.Dense(weight=_w(rng, (4, 10))), ["h2"])
    g.add("out", ir.Readout(shape=(4,), bias=_bias(rng, (4,))), ["d3"])
    g.outputs = ["out"]
    return g, "spikes", (12,)


def net_conv(rng):
    g = ir.Graph("conv")
    g.add("x", ir.Input(shape=(2, 6, 6), encoding="spikes"))
    g.add("c1", ir.Conv2d(weight=_w(rng, (4, 2, 3, 3)), padding=1), ["x"])
    th = np.array([1.0, 0.5, 1.5, 2.0], dtype=np.float32).reshape(4, 1, 1)
    g.add("h1", ir.IF(shape=(4, 6, 6), threshold=th, reset="subtract"), ["c1"])
    g.add("p1", ir.SumPool2d(kernel=2, stride=2), ["h1"])
    g.add("c2", ir.Conv2d(weight=_w(rng, (4, 2, 2, 2)), stride=1, padding=(0, 0, 1, 1), groups=2), ["p1"])
    g.add("h2", ir.IF(shape=(4, 3, 3), threshold=1.0, reset="zero", refractory=2), ["c2"])
    g.add("f", ir.Flatten(), ["h2"])
    g.add("d", ir.Dense(weight=_w(rng, (3, 36))), ["f"])
    g.add("out", ir.Readout(shape=(3,)), ["d"])
    g.outputs = ["out"]
    return g, "spikes", (2, 6, 6)


def net_residual(rng):
    g = ir.Graph("res")
    g.add("x", ir.Input(shape=(2, 5, 5), encoding="direct"))
    g.add("c0", ir.Conv2d(weight=_w(rng, (3, 2, 3, 3)), padding=1), ["x"])
    g.add("a", ir.IF(shape=(3, 5, 5), threshold=1.0, bias=_bias(rng, (3, 5, 5))), ["c0"])
    g.add("c1", ir.Conv2d(weight=_w(rng, (3, 3, 3, 3)), padding=1, dilation=1), ["a"])
    g.add("b", ir.IF(shape=(3, 5, 5), threshold=0.5), ["c1"])
    g.add("c2", ir.Conv2d(weight=_w(rng, (3, 3, 3, 3)), padding=(1, 1, 1, 1)), ["b"])
    g.add("skip", ir.Scale(scale=np.float32(0.5)), ["a"])
    g.add("sum", ir.Add(), ["c2", "skip"])
    g.add("c", ir.IF(shape=(3, 5, 5), threshold=0.75), ["sum"])
    g.add("p", ir.AvgPool2d(kernel=2, stride=1, padding=1), ["c"])
    g.add("f", ir.Flatten(), ["p"])
    g.add("d", ir.Dense(weight=_w(rng, (4, 108))), ["f"])
    g.add("out", ir.Readout(shape=(4,)), ["d"])
    g.outputs = ["out"]
    return g, "direct", (2, 5, 5)


def net_concat(rng):
    g = ir.Graph("cat")
    g.add("x", ir.Input(shape=(4, 3), encoding="spikes"))
    g.add("t", ir.Transpose(perm=(1, 0)), ["x"])
    g.add("f", ir.Flatten(), ["t"])
    g.add("d1", ir.Dense(weight=_w(rng, (6, 12))), ["f"])
    g.add("d2", ir.Dense(weight=_w(rng, (5, 12))), ["f"])
    g.add("h1", ir.IF(shape=(6,), threshold=0.5), ["d1"])
    g.add("h2", ir.LIF(shape=(5,), threshold=0.5, decay_current=0.25, decay_voltage=0.5), ["d2"])
    g.add("cat", ir.Concat(axis=0), ["h1", "h2"])
    g.add("r", ir.Reshape(shape=(11, 1)), ["cat"])
    g.add("f2", ir.Flatten(), ["r"])
    g.add("d3", ir.Dense(weight=_w(rng, (3, 11))), ["f2"])
    g.add("out", ir.Readout(shape=(3,)), ["d3"])
    g.outputs = ["out"]
    return g, "spikes", (4, 3)


NETS = [net_mlp, net_conv, net_residual, net_concat]


def _samples(rng, encoding, shape, n, steps):
    if encoding == "spikes":
        return (rng.random((n, steps) + shape) < 0.35).astype(np.float32)
    return (rng.integers(0, 9, size=(n,) + shape) / 8).astype(np.float32)


@pytest.mark.parametrize("timing", ["sync", "delay"])
@pytest.mark.parametrize("make", NETS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spikes_identical_to_plain_python_reference(make, timing, seed):
    rng = np.random.default_rng(seed)
    graph, encoding, shape = make(rng)
    steps = 12
    x = _samples(rng, encoding, shape, 3, steps)
    result = simulate(graph, x, timesteps=steps, timing=timing, batch_size=2, rasters=range(3))
    for i in range(3):
        rasters, outs = reference_sim.run(graph, x[i], steps, timing)
        for pop, ref in rasters.items():
            got = result.populations[pop].rasters[i]
            assert got.shape == ref.shape
            np.testing.assert_array_equal(got, ref, err_msg=f"{make.__name__} {timing} sample {i} population {pop}")
            np.testing.assert_array_equal(result.populations[pop].spikes[i], ref.sum(axis=1))
        for name, v in outs.items():
            np.testing.assert_allclose(result.outputs[name][i], v, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("path", ["events", "dense"])
def test_event_and_dense_paths_agree(monkeypatch, path):
    rng = np.random.default_rng(7)
    graph, encoding, shape = net_conv(rng)
    x = _samples(rng, encoding, shape, 4, 10)
    base = simulate(graph, x, timesteps=10, rasters=range(4))
    if path == "events":
        monkeypatch.setattr(syn.ProjectionKernel, "event_cost", lambda self, events: 0.0)
    else:
        monkeypatch.setattr(syn.ProjectionKernel, "event_cost", lambda self, events: float("inf"))
    forced = simulate(graph, x, timesteps=10, rasters=range(4))
    for pop, st in base.populations.items():
        for i in range(4):
            np.testing.assert_array_equal(st.rasters.get(i), forced.populations[pop].rasters.get(i))
    chunks = {p: (s.chunks_event, s.chunks_dense) for p, s in forced.populations.items() if s.kind in ("IF", "LIF")}
    if path == "events":
        assert all(d == 0 for _, d in chunks.values())
    else:
        assert all(d > 0 for _, d in chunks.values())


def test_batch_size_does_not_change_results():
    rng = np.random.default_rng(3)
    graph, encoding, shape = net_residual(rng)
    x = _samples(rng, encoding, shape, 7, 0)
    a = simulate(graph, x, timesteps=20, batch_size=7)
    b = simulate(graph, x, timesteps=20, batch_size=2, chunk_elements=50)  # many small chunks
    for pop in a.populations:
        np.testing.assert_array_equal(a.populations[pop].spikes, b.populations[pop].spikes)
    np.testing.assert_allclose(a.outputs["out"], b.outputs["out"], rtol=1e-6)


# ---------------------------------------------------------------------------------------------
# Hand-computed cases.


def _single_if(threshold, bias=None, reset="subtract", encoding="direct", n=1):
    g = ir.Graph()
    g.add("x", ir.Input(shape=(n,), encoding=encoding))
    g.add("w", ir.Dense(weight=np.eye(n, dtype=np.float32)), ["x"])
    g.add("h", ir.IF(shape=(n,), threshold=threshold, reset=reset, bias=bias), ["w"])
    g.add("d", ir.Dense(weight=np.ones((1, n), np.float32)), ["h"])
    g.add("out", ir.Readout(shape=(1,)), ["d"])
    g.outputs = ["out"]
    return g


def test_if_subtract_reset_hand_computed():
    # current 0.375, threshold 1: v = .375 .75 1.125* (.125) .5 .875 1.25* (.25) .625 1.0 (not > 1: strict) 1.375*
    r = simulate(_single_if(1.0), np.array([[0.375]], np.float32), timesteps=10, rasters=[0])
    np.testing.assert_array_equal(np.flatnonzero(r.populations["h"].rasters[0][:, 0]), [2, 5, 8])
    # reset to zero: v = .3 .6 .9 1.2* (0) .3 .6 .9 1.2* -> the same here; with 0.45: .45 .9 1.35* 0 .45 .9 1.35*
    r = simulate(_single_if(1.0, reset="zero"), np.array([[0.45]], np.float32), timesteps=7, rasters=[0])
    np.testing.assert_array_equal(np.flatnonzero(r.populations["h"].rasters[0][:, 0]), [2, 5])
    # strict threshold: exactly reaching it does not fire (0.5 + 0.5 = 1.0 is not > 1.0)
    r = simulate(_single_if(1.0), np.array([[0.5]], np.float32), timesteps=3, rasters=[0])
    np.testing.assert_array_equal(np.flatnonzero(r.populations["h"].rasters[0][:, 0]), [2])


def test_synops_and_macs_counts_hand_computed():
    g = ir.Graph()
    g.add("x", ir.Input(shape=(3,), encoding="direct"))
    w1 = np.array([[1, 0, 2], [0, 0, 1]], np.float32)  # fan-out of inputs: 1, 0, 2 non-zero synapses
    g.add("d1", ir.Dense(weight=w1), ["x"])
    g.add("h", ir.IF(shape=(2,), threshold=1.0), ["d1"])
    w2 = np.array([[1, 1], [0, 1], [0, 0]], np.float32)  # fan-out of h: 1 and 2
    g.add("d2", ir.Dense(weight=w2), ["h"])
    g.add("out", ir.Readout(shape=(3,)), ["d2"])
    g.outputs = ["out"]
    x = np.array([[0.6, 5.0, 0.0]], np.float32)  # x2 = 0 costs nothing; x1 has no synapses
    r = simulate(g, x, timesteps=10, rasters=[0])
    # analog MACs per step: x0 (1 synapse) + x1 (0) + x2 = 0 (skipped) = 1
    assert r.populations["x"].analog
    np.testing.assert_array_equal(r.populations["x"].synops[0], np.ones(10))
    # h0 gets 0.6 per step: spikes at steps 2,4,5,7,9 (v: .6 1.2* .8 1.4* 1.0 ... ); h1 gets 0 -> none
    raster = r.populations["h"].rasters[0]
    expected_h0 = []
    v = np.float32(0)
    for t in range(10):
        v = np.float32(v + np.float32(0.6))
        s = v > 1.0
        expected_h0.append(s)
        if s:
            v = np.float32(v - 1)
    np.testing.assert_array_equal(raster[:, 0], expected_h0)
    assert not raster[:, 1].any()
    np.testing.assert_array_equal(r.populations["h"].synops[0], raster[:, 0] * 1 + raster[:, 1] * 2)
    # readout: each h0 spike adds 1 to output 0
    np.testing.assert_allclose(r.outputs["out"][0], [raster[:, 0].sum() / 10, 0, 0])


def test_if_rates_converge_to_relu_like_one_over_t():
    rng = np.random.default_rng(0)
    g = ir.Graph()
    g.add("x", ir.Input(shape=(20,)))
    g.add("d1", ir.Dense(weight=rng.normal(0, 0.3, (40, 20)).astype(np.float32), bias=rng.normal(0, 0.1, 40).astype(np.float32)), ["x"])
    g.add("r1", ir.ReLU(), ["d1"])
    g.add("d2", ir.Dense(weight=rng.normal(0, 0.3, (30, 40)).astype(np.float32), bias=rng.normal(0, 0.1, 30).astype(np.float32)), ["r1"])
    g.add("r2", ir.ReLU(), ["d2"])
    g.add("d3", ir.Dense(weight=rng.normal(0, 0.3, (5, 30)).astype(np.float32)), ["r2"])
    g.outputs = ["d3"]
    x = rng.random((50, 20)).astype(np.float32)
    import snc

    snn = snc.compile(g, calib=x, percentile=100.0, passes=CONVERSION)
    # The ANN's ReLU activations, divided by each layer's threshold, are the target rates.
    ann = analog.evaluate(g, x, keep=["r1", "r2"])
    errors = []
    steps = [16, 64, 256, 1024]
    for t in steps:
        r = simulate(snn, x, timesteps=t, rasters=range(50))
        err = 0.0
        for pop in ("r1", "r2"):
            lam = snn.nodes[pop].threshold
            target = ann[pop] / lam
            rates = np.stack([r.populations[pop].rasters[i].mean(axis=0) for i in range(50)])
            err = max(err, float(np.abs(rates - target).max()))
        errors.append(err)
    # With percentile 100 nothing saturates: the error of a count is O(1), so the rate error ~ 1/T.
    slope = np.polyfit(np.log(steps), np.log(errors), 1)[0]
    assert slope < -0.8, (errors, slope)
    assert errors[-1] * steps[-1] < 10  # bounded number of misplaced spikes per neuron


def test_bad_data_is_a_typed_error():
    g = _single_if(1.0, n=2)
    with pytest.raises(InvalidData, match="expects"):
        simulate(g, np.zeros((3, 5), np.float32), timesteps=2)
    with pytest.raises(InvalidData, match="NaN"):
        simulate(g, np.full((1, 2), np.nan, np.float32), timesteps=2)
    rate = _single_if(1.0, n=2, encoding="rate")
    with pytest.raises(InvalidData, match=r"\[0, 1\]"):
        simulate(rate, np.full((1, 2), 2.0, np.float32), timesteps=2)


def test_rate_encoding_is_bernoulli_and_seeded():
    g = _single_if(1.0, n=4, encoding="rate")
    x = np.tile(np.array([[0.0, 0.25, 0.5, 1.0]], np.float32), (50, 1))
    a = simulate(g, x, timesteps=200, seed=5, rasters=[0])
    b = simulate(g, x, timesteps=200, seed=5, batch_size=7, rasters=[0])
    np.testing.assert_array_equal(a.populations["x"].rasters[0], b.populations["x"].rasters[0])
    rates = a.populations["x"].neuron_spikes / (50 * 200)
    np.testing.assert_allclose(rates, [0, 0.25, 0.5, 1.0], atol=0.02)


@pytest.mark.parametrize("rows", [1, 7, 64, 254, 255, 256, 511, 600])
def test_bit_counting_matches_numpy(rows):
    from snc.backends.sim.counting import column_counts, row_counts

    a = np.random.default_rng(rows).random((rows, 72)) < 0.4
    np.testing.assert_array_equal(column_counts(a), a.sum(axis=0))
    np.testing.assert_array_equal(row_counts(a), a.sum(axis=1))
    np.testing.assert_array_equal(column_counts(np.ones((rows, 16), bool)), np.full(16, rows))
