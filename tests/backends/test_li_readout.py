"""The leaky-integrator (LI) readout: a membrane Readout with decays. Float against a numpy
reference and snnTorch's Synaptic with no reset; fixed point against the integer equations
and, spike for spike with the same final membrane, Lava 0.10's LIF (which has du and dv)."""
from __future__ import annotations

import numpy as np
import pytest

import snc
import snc.ir as ir
from snc.backends.sim import simulate
from snc.errors import InvalidGraph


def _net(rng, *, dc=0.8, dv=0.1, bias=True) -> ir.Graph:
    g = ir.Graph("li")
    g.add("x", ir.Input(shape=(8,), encoding="spikes"))
    g.add("d1", ir.Dense(weight=rng.normal(0, 0.6, (12, 8)).astype(np.float32)), ["x"])
    g.add("h", ir.LIF(shape=(12,), threshold=1.0, reset="zero", decay_current=1.0, decay_voltage=0.1), ["d1"])
    g.add("d2", ir.Dense(weight=rng.normal(0, 0.5, (4, 12)).astype(np.float32)), ["h"])
    b = rng.normal(0, 0.05, 4).astype(np.float32) if bias else None
    g.add("out", ir.Readout(shape=(4,), bias=b, decay_current=dc, decay_voltage=dv), ["d2"])
    g.outputs = ["out"]
    return g


def test_float_li_readout_equals_the_equations_and_snntorch():
    import snntorch
    import torch

    rng = np.random.default_rng(0)
    n, steps = 6, 25
    x = (rng.random((n, steps, 8)) < 0.4).astype(np.float32)
    g = _net(rng, dc=0.3, dv=0.15)
    node = g.nodes["out"]
    assert node.leaky and node.output_scale(steps) == 1.0
    r = simulate(g, x, timesteps=steps, rasters=range(n))
    w = g.nodes["d2"].weight
    hidden = np.stack([r.populations["h"].rasters[i] for i in range(n)]).astype(np.float32)  # (N, T, 12)
    assert hidden.sum() > 0
    f32 = np.float32
    u = np.zeros((n, 4), f32)
    v = np.zeros((n, 4), f32)
    for t in range(steps):
        u = u * f32(1 - node.decay_current) + hidden[:, t] @ w.T
        v = v * f32(1 - node.decay_voltage) + (u + node.bias)
    np.testing.assert_allclose(r.outputs["out"], v, rtol=1e-5, atol=1e-6)
    assert not np.allclose(v, 0)

    # snnTorch's Synaptic, no reset, a threshold never reached: syn = alpha syn + I, mem = beta mem + syn
    g0 = _net(np.random.default_rng(0), dc=0.3, dv=0.15, bias=False)
    r0 = simulate(g0, x, timesteps=steps, rasters=range(n))
    hidden = np.stack([r0.populations["h"].rasters[i] for i in range(n)]).astype(np.float32)
    fc = torch.nn.Linear(12, 4, bias=False)
    li = snntorch.Synaptic(alpha=0.7, beta=0.85, threshold=1e30, reset_mechanism="none")
    with torch.no_grad():
        fc.weight.copy_(torch.from_numpy(g0.nodes["d2"].weight))
        syn, mem = li.init_synaptic()
        for t in range(steps):
            _, syn, mem = li(fc(torch.from_numpy(hidden[:, t])), syn, mem)
    np.testing.assert_allclose(r0.outputs["out"], mem.numpy(), rtol=1e-5, atol=1e-6)


def test_the_perfect_integrator_still_reports_the_mean():
    rng = np.random.default_rng(1)
    x = (rng.random((3, 10, 8)) < 0.4).astype(np.float32)
    g = _net(rng, dc=1.0, dv=0.0)
    assert not g.nodes["out"].leaky
    r = simulate(g, x, timesteps=10, rasters=range(3))
    hidden = np.stack([r.populations["h"].rasters[i] for i in range(3)]).astype(np.float64)
    expect = (hidden.sum(axis=1) @ g.nodes["d2"].weight.T.astype(np.float64) + 10 * g.nodes["out"].bias) / 10
    np.testing.assert_allclose(r.outputs["out"], expect, rtol=1e-5)


def _decay(x, d):
    prod = x * (4096 - d)
    return np.sign(prod) * (np.abs(prod) >> 12)


def test_fixed_point_li_readout_equals_the_integer_equations():
    rng = np.random.default_rng(3)
    n, steps = 5, 20
    x = (rng.random((n, steps, 8)) < 0.4).astype(np.float32)
    q = snc.compile(_net(rng, dc=0.25, dv=0.125), x, passes=("quantize",), timesteps=steps)
    fx = q.nodes["out"].fixed
    assert (fx.du, fx.dv) == (4095 - 3072, 512)
    r = simulate(q, x, timesteps=steps, arithmetic="fixed", rasters=range(n))
    w = q.nodes["d2"].fixed.weight.astype(np.int64) << int(q.nodes["d2"].fixed.weight_exp)
    mant = np.asarray(fx.bias_mant, np.int64)
    bias = mant << fx.bias_exp
    for i in range(n):
        u = np.zeros(4, np.int64)
        v = np.zeros(4, np.int64)
        for t in range(steps):
            a = w @ r.populations["h"].rasters[i][t].astype(np.int64)
            u = _decay(u, fx.du + 1) + (a << 6)  # Lava: u (4095 - du) / 4096
            v = _decay(v, fx.dv) + u + bias
        np.testing.assert_array_equal(r.outputs["out"][i], v * (fx.scale / 64.0))
    # and it stays close to the float network it came from
    rf = simulate(q, x, timesteps=steps)
    assert np.abs(r.outputs["out"] - rf.outputs["out"]).max() < 0.1 * np.abs(rf.outputs["out"]).max()


@pytest.mark.parametrize("du, dv", [(2047, 0), (300, 1000), (4095, 64)])
def test_fixed_point_li_readout_matches_lava(du, dv):
    from snc.backends.lava import check

    rng = np.random.default_rng(du + dv)
    g = ir.Graph("li-lava")
    g.add("x", ir.Input(shape=(8,), encoding="spikes"))
    w1 = rng.integers(-60, 127, (10, 8))
    g.add("d1", ir.Dense(weight=w1.astype(np.float32), fixed=ir.SynapseFixed(weight=w1.astype(np.int32), weight_exp=0)), ["x"])
    g.add("h", ir.LIF(shape=(10,), threshold=1.0, reset="zero", decay_current=1.0, decay_voltage=0.0,
                      fixed=ir.NeuronFixed(vth=150, bias_mant=np.zeros(10, np.int32), bias_exp=0, du=4095, dv=200, scale=1.0)), ["d1"])
    w2 = rng.integers(-127, 128, (3, 10))
    g.add("d2", ir.Dense(weight=w2.astype(np.float32), fixed=ir.SynapseFixed(weight=w2.astype(np.int32), weight_exp=0)), ["h"])
    bias = rng.integers(-50, 50, 3).astype(np.int32)
    g.add("out", ir.Readout(shape=(3,), decay_current=1.0 - (4095 - du) / 4096, decay_voltage=dv / 4096,
                            fixed=ir.NeuronFixed(vth=2**17, bias_mant=bias, bias_exp=2, du=du, dv=dv, scale=1.0)), ["d2"])
    g.outputs = ["out"]
    x = (rng.random((3, 16, 8)) < 0.6).astype(np.float32)
    lava, ours, report = check(g, x, timesteps=16)
    assert report["mismatches"] == 0, report
    assert ours.populations["h"].spikes.sum() > 0
    np.testing.assert_array_equal(lava.outputs["out"], ours.outputs["out"])  # the LI membrane, bit for bit
    assert np.any(ours.outputs["out"] != 0)


def test_bad_decays_are_refused():
    with pytest.raises(InvalidGraph, match="decays"):
        ir.Readout(shape=(3,), decay_voltage=1.5).check("out")
    with pytest.raises(InvalidGraph, match="spike-count"):
        ir.Readout(shape=(3,), mode="spike_count", decay_voltage=0.5).check("out")
