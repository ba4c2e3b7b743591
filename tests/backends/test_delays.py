"""Synaptic delays (``Delay`` operators on a projection): the simulator delivers a spike of step
t at step t + steps (plus one in delay timing), across chunk boundaries, exactly as a
hand-written numpy loop does."""
from __future__ import annotations

import numpy as np
import pytest

import snc.ir as ir
from snc.backends import analog
from snc.backends.lava.emitter import build_export
from snc.backends.plan import build_plan
from snc.backends.sim import simulate
from snc.errors import InvalidGraph, UnsupportedOperator

TH = (2.5, 1.5)


def _net(rng, d1=2, d2=3):
    w1 = rng.integers(-2, 4, (6, 5)).astype(np.float32)
    w2 = rng.integers(-2, 4, (4, 6)).astype(np.float32)
    w3 = rng.integers(-3, 4, (3, 4)).astype(np.float32)
    g = ir.Graph("delays")
    g.add("x", ir.Input(shape=(5,), encoding="spikes"))
    g.add("d1", ir.Dense(weight=w1), ["x"])
    g.add("z1", ir.Delay(steps=d1), ["d1"])
    g.add("h1", ir.IF(shape=(6,), threshold=TH[0]), ["z1"])
    g.add("d2", ir.Dense(weight=w2), ["h1"])
    g.add("z2", ir.Delay(steps=d2), ["d2"])
    g.add("h2", ir.IF(shape=(4,), threshold=TH[1], reset="zero"), ["z2"])
    g.add("d3", ir.Dense(weight=w3), ["h2"])
    g.add("out", ir.Readout(shape=(3,)), ["d3"])
    g.outputs = ["out"]
    return g, (w1, w2, w3)


def _reference(x, ws, shifts, steps):
    """numpy: every projection reads its source's spikes of step t - shift."""
    n = len(x)
    w1, w2, w3 = ws
    s1 = np.zeros((n, steps, 6), bool)
    s2 = np.zeros((n, steps, 4), bool)
    v1, v2, out = np.zeros((n, 6)), np.zeros((n, 4)), np.zeros((n, 3))

    def past(s, t, k):
        return s[:, t - k].astype(np.float64) if t - k >= 0 else np.zeros(s[:, 0].shape)

    for t in range(steps):
        v1 += past(x, t, shifts[0]) @ w1.T
        s1[:, t] = v1 > TH[0]
        v1 -= TH[0] * s1[:, t]
        v2 += past(s1, t, shifts[1]) @ w2.T
        s2[:, t] = v2 > TH[1]
        v2[s2[:, t]] = 0.0
        out += past(s2, t, shifts[2]) @ w3.T
    return s1, s2, out / steps


@pytest.mark.parametrize("timing", ["sync", "delay"])
@pytest.mark.parametrize("chunk", [None, 1, 3], ids=["one-chunk", "chunk-1", "chunk-3"])
def test_delayed_spikes_arrive_steps_later_across_chunks(timing, chunk):
    rng = np.random.default_rng(0)
    g, ws = _net(rng)
    steps, n = 20, 7
    x = rng.random((n, steps, 5)) < 0.4
    base = 1 if timing == "delay" else 0
    s1, s2, out = _reference(x, ws, (2 + base, 3 + base, base), steps)
    kw = {} if chunk is None else {"chunk_elements": chunk * n * 6}
    r = simulate(g, x.astype(np.float32), timesteps=steps, timing=timing, rasters=range(n), batch_size=n, **kw)
    for i in range(n):
        np.testing.assert_array_equal(r.populations["h1"].rasters[i], s1[i])
        np.testing.assert_array_equal(r.populations["h2"].rasters[i], s2[i])
    np.testing.assert_allclose(r.outputs["out"], out, rtol=0, atol=1e-9)
    assert s2.any() and s1[:, :2].sum() == 0  # nothing arrives before the delay


def test_a_delay_is_the_identity_in_the_rate_limit_and_refused_where_unsupported():
    rng = np.random.default_rng(1)
    g, _ = _net(rng)
    plain, _ = _net(np.random.default_rng(1), d1=1, d2=1)
    x = (rng.random((4, 3, 5)) < 0.5).astype(np.float32)
    a = analog.evaluate(g, {"x": x}, keep=["h2"])["h2"]
    b = analog.evaluate(plain, {"x": x}, keep=["h2"])["h2"]
    np.testing.assert_array_equal(a, b)
    spec, _ = build_export(g)  # delays become DelayDense synapses (spike-for-spike checks: test_lava.py)
    assert sorted(c["delay"] for c in spec["connections"]) == sorted(
        p.delay for pop in build_plan(g).populations for p in pop.projections if not p.static)
    assert any(c["delay"] > 0 for c in spec["connections"])
    far, _ = _net(np.random.default_rng(1), d1=70, d2=1)
    with pytest.raises(UnsupportedOperator, match="'z1'.*62"):
        build_export(far)
    bad = ir.Graph()
    bad.add("x", ir.Input(shape=(3,)))
    bad.add("d", ir.Dense(weight=np.ones((3, 3), np.float32)), ["x"])
    bad.add("z", ir.Delay(steps=1), ["d"])
    bad.add("h", ir.IF(shape=(3,)), ["z"])
    bad.add("o", ir.Dense(weight=np.ones((2, 3), np.float32)), ["h"])
    bad.add("out", ir.Readout(shape=(2,)), ["o"])
    bad.outputs = ["out"]
    with pytest.raises(UnsupportedOperator, match="'h'.*direct"):
        simulate(bad, np.ones((1, 3), np.float32), timesteps=2)
    with pytest.raises(InvalidGraph, match="at least 1 step"):
        ir.Delay(steps=0).check("z0")


def test_paths_with_different_delays_from_one_source_are_refused():
    g = ir.Graph()
    g.add("x", ir.Input(shape=(3,), encoding="spikes"))
    g.add("z", ir.Delay(steps=2), ["x"])
    g.add("sum", ir.Add(), ["z", "x"])
    g.add("h", ir.IF(shape=(3,)), ["sum"])
    g.add("o", ir.Dense(weight=np.ones((2, 3), np.float32)), ["h"])
    g.add("out", ir.Readout(shape=(2,)), ["o"])
    g.outputs = ["out"]
    with pytest.raises(UnsupportedOperator, match="different delays"):
        simulate(g, np.ones((1, 2, 3), np.float32), timesteps=2)


@pytest.mark.parametrize("timing", ["sync", "delay"])
def test_fixed_point_delays_shift_spikes_by_whole_steps(timing):
    """In Loihi fixed point, two more steps of delay on the input projection give exactly the
    spikes of the shorter delay fed with the input two steps later; and chunking changes nothing."""
    import snc

    rng = np.random.default_rng(2)
    long_, _ = _net(np.random.default_rng(5), d1=3)
    short, _ = _net(np.random.default_rng(5), d1=1)
    steps, n = 16, 6
    x = (rng.random((n, steps, 5)) < 0.4).astype(np.float32)
    later = np.zeros_like(x)
    later[:, 2:] = x[:, :-2]
    qa = snc.compile(long_, x, passes=["quantize"], timesteps=steps, weight_bits=8, verify=False)
    qb = snc.compile(short, x, passes=["quantize"], timesteps=steps, weight_bits=8, verify=False)
    a = simulate(qa, x, timesteps=steps, timing=timing, rasters=range(n), arithmetic="fixed")
    b = simulate(qb, later, timesteps=steps, timing=timing, rasters=range(n), arithmetic="fixed")
    for chunk in (1, 3):
        c = simulate(qa, x, timesteps=steps, timing=timing, rasters=range(n), arithmetic="fixed",
                     batch_size=n, chunk_elements=chunk * n * 6)
        for name in ("h1", "h2"):
            for i in range(n):
                np.testing.assert_array_equal(c.populations[name].rasters[i], a.populations[name].rasters[i])
    for name in ("h1", "h2"):
        for i in range(n):
            np.testing.assert_array_equal(a.populations[name].rasters[i], b.populations[name].rasters[i])
    assert sum(a.populations["h2"].rasters[i].sum() for i in range(n)) > 0
