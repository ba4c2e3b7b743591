"""ATRLIF (ir/atrlif.py), Lava's adaptive-threshold LIF with a refractory state: float against a
float32 numpy loop written out here, fixed point against steps computed by hand, and recurrent
networks with delays against Lava 0.10's ATRLIF process spike for spike."""
from __future__ import annotations

import numpy as np
import pytest

import snc
import snc.ir as ir
from snc.backends.sim import simulate

from .recurrent_graphs import recurrent

F = np.float32
PARAMS = dict(decay_current=0.25, decay_voltage=0.125, decay_threshold=0.0625, decay_refractory=0.5)


def _net(rng, delay, threshold_step=0.75, **params):
    w_in = (rng.integers(-2, 7, (6, 4)) / 4).astype(np.float32)
    w_rec = (rng.integers(-3, 3, (6, 6)) / 4).astype(np.float32)
    h = ir.ATRLIF(shape=(6,), threshold=1.5, threshold_step=threshold_step, **{**PARAMS, **params})
    return recurrent(h, w_in, w_rec, delay, np.ones((2, 6), np.float32), "atrlif"), w_in, w_rec


def test_float_matches_the_equations():
    rng = np.random.default_rng(0)
    delay, n, steps = 2, 5, 40
    g, w_in, w_rec = _net(rng, delay)
    x = (rng.random((n, steps, 4)) < 0.4).astype(np.float32)
    r = simulate(g, x, timesteps=steps, rasters=range(n))
    spiked = 0
    for k in range(n):
        i = np.zeros(6, F); v = np.zeros(6, F); rr = np.zeros(6, F); th = np.full(6, F(1.5))
        s = np.zeros((steps, 6), bool)
        for t in range(steps):
            cur = (x[k, t] @ w_in.T).astype(F) + ((s[t - delay].astype(F) @ w_rec.T).astype(F) if t >= delay else F(0))
            i = (i * F(0.75) + cur).astype(F)
            v = (v * F(0.875) + i).astype(F)
            th = ((th - F(1.5)) * F(0.9375) + F(1.5)).astype(F)
            rr = (rr * F(0.5)).astype(F)
            s[t] = (v - rr) >= th
            rr = (rr + F(2) * th * s[t]).astype(F)
            th = (th + F(0.75) * s[t]).astype(F)
        np.testing.assert_array_equal(r.populations["h"].rasters[k], s, err_msg=f"sample {k}")
        spiked += int(s.sum())
    assert 0 < spiked < n * steps * 6


def test_fixed_point_steps_by_hand():
    """One neuron, 100 units of input every step, vth 50, step 20: the first two steps of
    Lava's integer equations, worked out by hand."""
    from snc.ir import atrlif

    node = ir.ATRLIF(shape=(1,), threshold=1.0, threshold_step=1.0, step_fixed=20, **PARAMS,
                     fixed=ir.NeuronFixed(vth=50, bias_mant=np.zeros(1, np.int32)))
    st = atrlif.fixed_state(node, 1)
    a = np.array([[100]], np.int64)
    zero = np.zeros((1, 1), np.int64)
    s = atrlif.fixed_step(node, st, a, zero)
    # i = 6400; v = 6400; theta = 3200; r = 0; v - r >= theta: spike, r = 6400, theta = 3200 + 1280
    assert s.all() and (st["i"][0, 0], st["v"][0, 0], st["theta"][0, 0], st["r"][0, 0]) == (6400, 6400, 4480, 6400)
    s = atrlif.fixed_step(node, st, a, zero)
    # i = trunc(6400 * 3071) >> 12 = 4798, + 6400 = 11198; v = (6400 * 3584 >> 12) + 11198 = 16798;
    # theta = (1280 * 3840 >> 12) + 3200 = 4400; r = 6400 * 2048 >> 12 = 3200; spike: r = 12000, theta = 5680
    assert s.all() and (st["i"][0, 0], st["v"][0, 0], st["theta"][0, 0], st["r"][0, 0]) == (11198, 16798, 5680, 12000)


@pytest.mark.parametrize("delay, step, params", [
    (1, 0.75, {}),
    (3, 0.5, dict(decay_current=0.5, decay_voltage=0.0, decay_threshold=0.125, decay_refractory=0.25)),
    (2, 1.0, dict(decay_current=0.0, decay_voltage=0.3, decay_threshold=0.01, decay_refractory=0.9)),
])
def test_recurrent_atrlif_matches_lava_spike_for_spike(delay, step, params):
    from snc.backends.lava import check

    rng = np.random.default_rng(delay)
    g, _, _ = _net(rng, delay, threshold_step=step, **params)
    steps, n = 24, 4
    x = (rng.random((n, steps, 4)) < 0.45).astype(np.float32)
    q = snc.compile(g, x, passes=("quantize",), timesteps=steps)
    assert q.nodes["h"].step_fixed > 0
    from snc.backends.lava.emitter import build_export

    spec, _ = build_export(q)
    assert {p["name"]: p["process"] for p in spec["populations"]}["h"] == "ATRLIF"
    lava, ours, report = check(q, x, timesteps=steps)
    assert report["mismatches"] == 0, report
    assert 0 < ours.populations["h"].spikes.sum() < n * steps * 6
    np.testing.assert_array_equal(lava.outputs["out"], ours.outputs["out"])


def test_settings_it_does_not_have_are_refused():
    with pytest.raises(snc.InvalidGraph, match="reset mode or refractory"):
        ir.ATRLIF(shape=(2,), refractory=2).check("h")
    with pytest.raises(snc.InvalidGraph, match="decay_threshold"):
        ir.ATRLIF(shape=(2,), decay_threshold=2.0).check("h")
