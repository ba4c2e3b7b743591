"""CuBa-LIF (ir/cuba.py) in recurrent networks with delays, reset to a value, refractoriness and
an adaptive threshold, against a float32 numpy loop written out here; with snnTorch's reset
timing against snnTorch's Synaptic and RLeaky (beta < 1) on the same weights and inputs; in
fixed point against the integer equations written out here."""
from __future__ import annotations

import numpy as np
import pytest

import snc
import snc.ir as ir
from snc.backends.sim import simulate

from .recurrent_graphs import recurrent
from .snntorch_ref import rleaky_spikes

F = np.float32

VARIANTS = {
    "value_reset_refractory": dict(reset="value", v_reset=-0.5, refractory=2),
    "adaptive_threshold": dict(reset="subtract", adapt=0.75, adapt_decay=0.25),
    "zero_reset": dict(reset="zero"),
    "next_step_subtract": dict(reset="subtract", reset_timing="next_step"),
}


def _rnn(rng, params, delay):
    w_in = (rng.integers(-2, 7, (6, 4)) / 4).astype(np.float32)
    w_rec = (rng.integers(-3, 4, (6, 6)) / 4).astype(np.float32)
    h = ir.CubaLIF(shape=(6,), threshold=1.5, decay_current=0.5, decay_voltage=0.25, **params)
    g = recurrent(h, w_in, w_rec, delay, (rng.integers(-2, 3, (3, 6)) / 2).astype(np.float32), "cuba")
    return g, w_in, w_rec


def _readout(g, src: str, n: int) -> None:
    g.add("o", ir.Dense(weight=np.ones((2, n), np.float32)), [src])
    g.add("out", ir.Readout(shape=(2,)), ["o"])
    g.outputs = ["out"]


def _reference(x, w_in, w_rec, p, delay):
    """The module docstring's equations, float32, one sample at a time."""
    steps = x.shape[0]
    th, keep_u, keep_v = F(1.5), F(0.5), F(0.75)
    reset, timing = p.get("reset", "subtract"), p.get("reset_timing", "immediate")
    v_reset, R = F(p.get("v_reset", 0.0)), int(p.get("refractory", 0))
    adapt, keep_a = F(p.get("adapt", 0.0)), F(1.0 - p.get("adapt_decay", 0.0))
    u = np.zeros(6, F); v = np.zeros(6, F); a = np.zeros(6, F); ref = np.zeros(6, int)
    s_prev = np.zeros(6, bool)
    s = np.zeros((steps, 6), bool)

    def do_reset(v, spk):
        if reset == "subtract":
            return np.where(spk, v - th, v).astype(F)
        return np.where(spk, F(0.0) if reset == "zero" else v_reset, v).astype(F)

    for t in range(steps):
        rec = s[t - delay].astype(F) @ w_rec.T if t >= delay else np.zeros(6, F)
        current = (x[t] @ w_in.T).astype(F) + rec.astype(F)
        u = (u * keep_u + current).astype(F)
        free = ref == 0
        v = np.where(free, (v * keep_v + u).astype(F), v)
        if timing == "next_step":
            v = do_reset(v, s_prev)
        spk = (v > th + a) & free
        if timing == "immediate":
            v = do_reset(v, spk)
        ref = np.where(spk, R, np.maximum(ref - 1, 0)) if R else ref
        a = (a * keep_a + adapt * spk).astype(F)
        s[t] = s_prev = spk
    return s


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("delay", [1, 2])
def test_recurrent_cuba_lif_matches_the_equations(variant, delay):
    rng = np.random.default_rng(len(variant) * 10 + delay)
    params = VARIANTS[variant]
    g, w_in, w_rec = _rnn(rng, params, delay)
    n, steps = 6, 40
    x = (rng.random((n, steps, 4)) < 0.35).astype(np.float32)
    r = simulate(g, x, timesteps=steps, rasters=range(n), batch_size=4, chunk_elements=60)  # several chunks
    spiked = 0
    for i in range(n):
        ref = _reference(x[i], w_in, w_rec, params, delay)
        np.testing.assert_array_equal(r.populations["h"].rasters[i], ref, err_msg=f"sample {i}")
        spiked += int(ref.sum())
    assert 0 < spiked < n * steps * 6


def test_the_options_change_the_spikes():
    """Each option is exercised: the same network without it spikes differently."""
    rng = np.random.default_rng(1)
    x = (rng.random((6, 40, 4)) < 0.35).astype(np.float32)
    counts = {}
    for name, params in {**VARIANTS, "plain": dict(reset="subtract")}.items():
        g, _, _ = _rnn(np.random.default_rng(0), params, 1)
        counts[name] = simulate(g, x, timesteps=40).populations["h"].spikes.sum()
    assert len(set(counts.values())) == len(counts), counts


def test_synaptic_matches_snntorch():
    """snnTorch Synaptic (alpha, beta, reset by subtraction of the previous step's spike) is
    CuBa-LIF with du = 1 - alpha, dv = 1 - beta and next-step reset timing."""
    import snntorch
    import torch

    rng = np.random.default_rng(5)
    w = (rng.integers(-3, 8, (8, 5)) / 8).astype(np.float32)
    steps, n = 50, 7
    x = (rng.random((n, steps, 5)) < 0.4).astype(np.float32)
    g = ir.Graph("syn")
    g.add("x", ir.Input(shape=(5,), encoding="spikes"))
    g.add("fc", ir.Dense(weight=w), ["x"])
    g.add("h", ir.CubaLIF(shape=(8,), threshold=1.0, decay_current=0.1, decay_voltage=0.2, reset="subtract",
                          reset_timing="next_step"), ["fc"])
    _readout(g, "h", 8)
    lif = snntorch.Synaptic(alpha=0.9, beta=0.8, threshold=1.0, reset_mechanism="subtract")
    fc = torch.nn.Linear(5, 8, bias=False)
    with torch.no_grad():
        fc.weight.copy_(torch.from_numpy(w))
        syn, mem = lif.init_synaptic()
        out = []
        for t in range(steps):
            spk, syn, mem = lif(fc(torch.from_numpy(x[:, t])), syn, mem)
            out.append(spk.numpy().astype(bool))
    theirs = np.stack(out, axis=1)
    r = simulate(g, x, timesteps=steps, rasters=range(n))
    ours = np.stack([r.populations["h"].rasters[i] for i in range(n)])
    assert theirs.sum() > 0
    np.testing.assert_array_equal(ours, theirs)


def test_rleaky_with_leak_matches_snntorch():
    """snnTorch RLeaky with beta < 1 (all-to-all recurrent Linear on the previous step's spikes):
    CuBa-LIF with du = 1 (no synaptic memory), dv = 1 - beta, next-step reset, fed back through a
    Dense and a one-step Delay. Weights on a 1/4 grid and beta = 0.5 keep every sum exact, so
    the order in which the feed-forward and recurrent inputs are added cannot matter."""
    rng = np.random.default_rng(9)
    w_in = (rng.integers(-1, 6, (6, 4)) / 4).astype(np.float32)
    w_rec = (rng.integers(-3, 4, (6, 6)) / 4).astype(np.float32)
    steps, n = 16, 6
    x = (rng.random((n, steps, 4)) < 0.4).astype(np.float32)
    g = ir.Graph("rleaky")
    g.add("x", ir.Input(shape=(4,), encoding="spikes"))
    g.add("ff", ir.Dense(weight=w_in), ["x"])
    g.add("sum", ir.Add(), ["ff"])
    g.add("h", ir.CubaLIF(shape=(6,), threshold=1.0, decay_current=1.0, decay_voltage=0.5, reset="subtract",
                          reset_timing="next_step"), ["sum"])
    g.add("rec", ir.Dense(weight=w_rec), ["h"])
    g.add("z", ir.Delay(steps=1), ["rec"])
    g.set_inputs("sum", ["ff", "z"])
    _readout(g, "h", 6)
    theirs = rleaky_spikes(x, w_in, w_rec, beta=0.5, threshold=1.0)
    r = simulate(g, x, timesteps=steps, rasters=range(n))
    ours = np.stack([r.populations["h"].rasters[i] for i in range(n)])
    assert theirs.sum() > 0
    np.testing.assert_array_equal(ours, theirs)


def _decay(x, d):
    prod = x * (4096 - d)
    return np.sign(prod) * (np.abs(prod) >> 12)


@pytest.mark.parametrize("variant", ["value_reset_refractory", "adaptive_threshold"])
def test_fixed_point_matches_the_integer_equations(variant):
    rng = np.random.default_rng(2)
    params = VARIANTS[variant]
    g, _, _ = _rnn(rng, params, 1)
    n, steps = 5, 30
    x = (rng.random((n, steps, 4)) < 0.35).astype(np.float32)
    q = snc.compile(g, x, passes=("quantize",), timesteps=steps)
    h = q.nodes["h"]
    assert h.du_fixed == 2048 and h.dv_fixed == 1024
    r = simulate(q, x, timesteps=steps, arithmetic="fixed", rasters=range(n))

    def ints(name):
        fx = q.nodes[name].fixed
        return fx.weight.astype(np.int64) << int(fx.weight_exp) if fx.weight_exp >= 0 else fx.weight.astype(np.int64) >> -int(fx.weight_exp)

    w_in, w_rec = ints("ff"), ints("rec")
    vth6 = int(h.fixed.vth) << 6
    v_reset = np.broadcast_to(h.v_reset_fixed, (6,)).astype(np.int64)
    adapt = np.broadcast_to(h.adapt_fixed, (6,)).astype(np.int64)
    R = int(h.refractory)
    spiked = 0
    for i in range(n):
        u = np.zeros(6, np.int64); v = np.zeros(6, np.int64); a = np.zeros(6, np.int64); ref = np.zeros(6, int)
        s = np.zeros((steps, 6), bool)
        for t in range(steps):
            inp = w_in @ x[i, t].astype(np.int64) + (w_rec @ s[t - 1].astype(np.int64) if t >= 1 else 0)
            u = _decay(u, h.du_fixed) + (inp << 6)
            free = ref == 0
            v = np.where(free, _decay(v, h.dv_fixed) + u, v)
            spk = (v > vth6 + a) & free
            if h.reset == "subtract":
                v = np.where(spk, v - vth6, v)
            else:
                v = np.where(spk, v_reset, v)
            ref = np.where(spk, R, np.maximum(ref - 1, 0)) if R else ref
            a = _decay(a, h.adapt_decay_fixed) + adapt * spk
            s[t] = spk
        np.testing.assert_array_equal(r.populations["h"].rasters[i], s, err_msg=f"sample {i}")
        spiked += int(s.sum())
    assert spiked > 0


@pytest.mark.parametrize("params, lacking", [
    (dict(reset="value", v_reset=-0.5), "reset 'value'"),
    (dict(reset="zero", refractory=2), "refractory"),
    (dict(reset="zero", adapt=0.5, adapt_decay=0.1), "adaptive threshold"),
    (dict(reset="subtract", reset_timing="next_step"), "reset 'subtract'"),
])
def test_lava_refuses_what_its_lif_lacks(params, lacking):
    from snc.backends.lava.emitter import build_export

    g = ir.Graph("ff")
    g.add("x", ir.Input(shape=(4,), encoding="spikes"))
    g.add("ff", ir.Dense(weight=np.ones((3, 4), np.float32)), ["x"])
    g.add("h", ir.CubaLIF(shape=(3,), **params), ["ff"])
    _readout(g, "h", 3)
    with pytest.raises(snc.UnsupportedOperator, match=f"'h'.*{lacking}.*CubaLIF"):
        build_export(g)


@pytest.mark.parametrize("delay, dc, dv", [(1, 0.5, 0.25), (3, 0.125, 0.0625), (2, 1.0, 0.5)])
def test_recurrent_cuba_lif_matches_lava_spike_for_spike(delay, dc, dv):
    """CuBa-LIF with reset to zero is Lava's LIF: quantised by snc, emitted with Lava's decays
    (du - 1: Lava's current decay is (4095 - du)/4096) and its DelayDense for the loop, the
    fixed-point run matches Lava 0.10 spike for spike, the readout bit for bit."""
    from snc.backends.lava import check

    rng = np.random.default_rng(delay)
    w_in = (rng.integers(-2, 7, (6, 4)) / 4).astype(np.float32)
    w_rec = (rng.integers(-3, 4, (6, 6)) / 4).astype(np.float32)
    h = ir.CubaLIF(shape=(6,), threshold=1.5, decay_current=dc, decay_voltage=dv, reset="zero")
    g = recurrent(h, w_in, w_rec, delay, np.ones((2, 6), np.float32), "cuba-lava")
    steps, n = 24, 4
    x = (rng.random((n, steps, 4)) < 0.4).astype(np.float32)
    q = snc.compile(g, x, passes=("quantize",), timesteps=steps)
    assert q.nodes["h"].du_fixed == round(4096 * dc)
    lava, ours, report = check(q, x, timesteps=steps)
    assert report["mismatches"] == 0, report
    assert 0 < ours.populations["h"].spikes.sum() < n * steps * 6
    np.testing.assert_array_equal(lava.outputs["out"], ours.outputs["out"])
