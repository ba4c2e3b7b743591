"""Recurrent spiking graphs: cycles are allowed when each passes a Delay. The simulator runs
them spike for spike like a hand-written numpy loop (IF and LIF, delay 1 and 3, both timings,
any chunking); a cycle without a delay is refused naming the cycle."""
from __future__ import annotations

import numpy as np
import pytest

import snc.ir as ir
from snc.backends import analog
from snc.backends.sim import simulate
from snc.errors import InvalidGraph, UnsupportedOperator

from .snntorch_ref import rleaky_spikes


def _rnn(rng, kind, delay):
    """x (spikes) -> Dense -> Add <- Delay <- Dense(recurrent) <- h ; h -> Dense -> Readout."""
    w_in = rng.integers(-1, 4, (6, 4)).astype(np.float32)
    w_rec = rng.integers(-2, 3, (6, 6)).astype(np.float32)
    w_out = rng.integers(-2, 3, (3, 6)).astype(np.float32)
    g = ir.Graph("rnn")
    g.add("x", ir.Input(shape=(4,), encoding="spikes"))
    g.add("ff", ir.Dense(weight=w_in), ["x"])
    g.add("sum", ir.Add(), ["ff"])
    pop = ir.IF(shape=(6,), threshold=2.5) if kind == "IF" else ir.LIF(shape=(6,), threshold=2.5, decay_current=0.5,
                                                                          decay_voltage=0.25)
    g.add("h", pop, ["sum"])
    g.add("rec", ir.Dense(weight=w_rec), ["h"])
    g.add("z", ir.Delay(steps=delay), ["rec"])
    g.set_inputs("sum", ["ff", "z"])  # closes the loop
    g.add("out_w", ir.Dense(weight=w_out), ["h"])
    g.add("out", ir.Readout(shape=(3,)), ["out_w"])
    g.outputs = ["out"]
    return g, (w_in, w_rec, w_out)


def _reference(x, ws, kind, delay, base, steps):
    w_in, w_rec, w_out = ws
    n = len(x)
    s = np.zeros((n, steps, 6), bool)
    v = np.zeros((n, 6), np.float64)
    u = np.zeros((n, 6), np.float64)
    out = np.zeros((n, 3))

    def past(a, t, k):
        return a[:, t - k].astype(np.float64) if t - k >= 0 else np.zeros(a[:, 0].shape)

    for t in range(steps):
        current = past(x, t, base) @ w_in.T + past(s, t, delay + base) @ w_rec.T
        if kind == "IF":
            v += current
        else:
            u = 0.5 * u + current
            v = 0.75 * v + u
        s[:, t] = v > 2.5
        v -= 2.5 * s[:, t]
        out += past(s, t, base) @ w_out.T
    return s, out / steps


@pytest.mark.parametrize("kind", ["IF", "LIF"])
@pytest.mark.parametrize("delay", [1, 3])
@pytest.mark.parametrize("timing", ["sync", "delay"])
def test_recurrent_networks_match_a_numpy_loop(kind, delay, timing):
    rng = np.random.default_rng(delay)
    g, ws = _rnn(rng, kind, delay)
    assert g.is_recurrent
    steps, n = 24, 5
    x = rng.random((n, steps, 4)) < 0.3
    s, out = _reference(x, ws, kind, delay, 1 if timing == "delay" else 0, steps)
    for chunk in (None, 1):
        kw = {} if chunk is None else {"chunk_elements": n * 6}
        r = simulate(g, x.astype(np.float32), timesteps=steps, timing=timing, rasters=range(n), batch_size=n, **kw)
        for i in range(n):
            np.testing.assert_array_equal(r.populations["h"].rasters[i], s[i])
        np.testing.assert_allclose(r.outputs["out"], out, rtol=0, atol=1e-5)
    assert s.sum() > 0


def test_a_cycle_without_a_delay_is_refused_naming_it():
    g, _ = _rnn(np.random.default_rng(0), "IF", 1)
    g.set_inputs("sum", ["ff", "rec"])  # the loop now skips the Delay
    with pytest.raises(InvalidGraph, match=r"cycle without a delay: .*h.*rec.*sum|cycle without a delay: .*sum.*h.*rec"):
        g.validate()


def test_the_rate_limit_of_a_recurrent_network_is_refused():
    g, _ = _rnn(np.random.default_rng(0), "IF", 1)
    with pytest.raises(UnsupportedOperator, match="recurrent"):
        analog.evaluate(g, np.zeros((1, 3, 4), np.float32))


def test_a_recurrent_if_network_matches_snntorch_rleaky():
    """snnTorch's RLeaky (beta = 1: integrate-and-fire, reset by subtraction, all-to-all
    recurrent Linear reading the previous step's spikes) against the same weights as an IF
    population fed back through a Dense and a one-step Delay: the same spikes, step by step.
    (For beta < 1 snnTorch subtracts the threshold after the decay, snc's LIF before it, so
    the two leaky models differ by design.)"""
    rng = np.random.default_rng(7)
    g, (w_in, w_rec, w_out) = _rnn(rng, "IF", 1)
    steps, n = 30, 6
    x = (rng.random((n, steps, 4)) < 0.3).astype(np.float32)
    theirs = rleaky_spikes(x, w_in, w_rec, beta=1.0, threshold=2.5)  # (n, T, 6)
    r = simulate(g, x, timesteps=steps, rasters=range(n))
    ours = np.stack([r.populations["h"].rasters[i] for i in range(n)])
    assert theirs.sum() > 0
    np.testing.assert_array_equal(ours, theirs)
