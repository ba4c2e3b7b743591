"""One spike-coded projection run event by event: snc's simulator (float and fixed point) gives
the pseudo-spiking value W (V_th c), and Lava 0.10 gives the same fixed-point readout bit for bit."""
from __future__ import annotations

import numpy as np
import pytest

from snc.backends.sim import simulate
from snc.errors import UnsupportedOperator
from snc.ir import spike_coding as sc
from snc.lm import lower


def _case(coding, seed=0, n=4, n_in=12, n_out=5):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, n_in))
    if coding == "binary":
        x = np.abs(x)
    w_int = rng.integers(-100, 101, (n_out, n_in))
    trains, vth, t = lower.code(x, 3.0, coding)
    c = sc.decode(trains, coding)
    return w_int, trains, vth, t, c


@pytest.mark.parametrize("coding", ["binary", "ternary"])
def test_the_simulator_gives_the_pseudo_spiking_value(coding):
    w_int, trains, vth, t, c = _case(coding)
    g = lower.projection_graph(w_int.astype(np.float32), coding)
    spikes = lower.spike_input(trains, coding)
    assert spikes.shape == (4, t, g.nodes["x"].shape[0])
    r = simulate(g, spikes, timesteps=t)
    y = lower.value(r.outputs["out"], vth, t)
    np.testing.assert_allclose(y, (vth * c) @ w_int.T, rtol=1e-12, atol=1e-12)
    # the events the simulator counted are the coding's events
    assert r.populations["x"].spikes.sum() == sc.stats(c, coding)["events"]


@pytest.mark.parametrize("coding", ["binary", "ternary"])
def test_fixed_point_equals_lava_bit_for_bit(coding):
    from snc.backends.lava import check

    w_int, trains, vth, t, c = _case(coding, seed=3)
    g = lower.projection_graph(w_int.astype(np.float32), coding, weight_int=w_int)
    spikes = lower.spike_input(trains, coding, pad=1)  # Lava's synapses deliver one step later
    lava, ours, report = check(g, spikes.astype(np.float32), timesteps=t + 1)
    assert report["mismatches"] == 0, report
    np.testing.assert_array_equal(lava.outputs["out"], ours.outputs["out"])
    # and both are the exact integer product: sum_t W s_t = W c, and y = W (V_th c)
    summed = ours.outputs["out"] * (t + 1)  # v[T] / T * T: integers up to float rounding of the division
    np.testing.assert_allclose(summed, np.rint(summed), atol=1e-9)
    np.testing.assert_array_equal(np.rint(summed), c @ w_int.T)
    np.testing.assert_allclose(lower.value(lava.outputs["out"], vth, t + 1), (vth * c) @ w_int.T, rtol=1e-12)


def test_weighted_or_payload_codings_are_refused():
    for coding in ("bitwise", "graded", "bitwise_ternary"):
        with pytest.raises(UnsupportedOperator, match="static spiking projection"):
            lower.projection_graph(np.ones((2, 3), np.float32), coding)
