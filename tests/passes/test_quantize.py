"""``quantize``: weights, thresholds and biases to Loihi's fixed point, and the fixed-point model.

Specification (snc/passes/quantize.py, ir/fixed_point.py, ../shared/reference/LAVA_FIXED_POINT.md):

* every quantised weight is a signed mantissa within its declared bits, the float weight is its
  dequantised value mantissa x scale x 2**exp, and every original weight lies within half a
  step of it unless the report counts it as clipped; thresholds are 17-bit integers (m * 2**k,
  m <= 255, for reset by subtraction); biases have 13-bit mantissas and 3-bit exponents (in a
  units, i.e. 6 more in v units, for subtractive reset). All of this is recomputed here with
  numpy from the unquantised graph, on random networks (hypothesis).
* the simulator's fixed-point arithmetic is Lava's: checked against hand-computed traces of u, v
  and spikes, for reset to zero (Lava's LIF) and by subtraction (the LIF + recurrent-synapse
  circuit of backends/sim/neurons.py), including the 24-bit current wrap.
* on a trained network the fixed and float32 models of the quantised graph agree, and the
  agreement the report states is the one recomputed here.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import snc
import snc.ir as ir
from snc.backends.sim import simulate
from snc.errors import InvalidOption, UnsupportedOperator
from snc.passes import CONVERSION, PassContext, get
from snc.ir.annotations import maxpool_part

VTH_LIMIT = 2**17  # Loihi's threshold mantissa is 17 bits (unsigned)
BIAS_MANT_RANGE = (-(2**12), 2**12 - 1)  # 13-bit signed
RECURRENT_MAX = 255  # |weight| of the 8-bit recurrent synapse that subtracts the threshold


def quantize(graph: ir.Graph, calib: np.ndarray | None, timesteps: int = 8, **options) -> tuple[ir.Graph, PassContext]:
    ctx = PassContext(calibration=calib, timesteps=timesteps, options=dict(options))
    return get("quantize")(graph, ctx), ctx


def layer_reports(ctx: PassContext) -> dict[str, dict]:
    return {e["node"]: e["layer"] for e in ctx.report if e["pass"] == "quantize" and "layer" in e}


def round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def subtract_representable(vth: int) -> bool:
    """vth = m * 2**k with 1 <= m <= 255 and k >= 0."""
    while vth > RECURRENT_MAX and vth % 2 == 0:
        vth //= 2
    return 1 <= vth <= RECURRENT_MAX


# ---------------------------------------------------------------------------------------------
# Random ANNs: [Conv -> ReLU -> (AvgPool | MaxPool)?]* -> Flatten -> [Dense -> ReLU]* -> Dense.


def random_ann(seed: int, convs: int, pools: list[str], dense: list[int], channels: int):
    """The ANN and, per weighted layer fed by an average pool, the pool's 1/k**2 (quantize moves
    it into those weights)."""
    rng = np.random.default_rng(seed)
    bias_scale = rng.choice([0.3, 0.3, 300.0])  # sometimes biases far above the weights (bias exponents)
    g = ir.Graph(f"random{seed}")
    g.add("x", ir.Input(shape=(channels, 8, 8)))
    prev, c, hw, pending, avg_gain = "x", channels, 8, None, {}
    for i in range(convs):
        co = int(rng.integers(1, 4))
        w = rng.normal(size=(co, c, 3, 3)) * rng.choice([0.1, 1.0, 5.0])
        g.add(f"c{i}", ir.Conv2d(weight=w.astype(np.float32), bias=(rng.normal(size=co) * bias_scale).astype(np.float32), padding=1), [prev])
        if pending:
            avg_gain[f"c{i}"], pending = pending, None
        g.add(f"r{i}", ir.ReLU(), [f"c{i}"])
        prev, c = f"r{i}", co
        if pools[i] == "avg":
            g.add(f"p{i}", ir.AvgPool2d(kernel=2, stride=2), [prev])
            prev, hw, pending = f"p{i}", hw // 2, 0.25
        elif pools[i] == "max":
            g.add(f"p{i}", ir.MaxPool2d(kernel=2, stride=2), [prev])
            prev, hw = f"p{i}", hw // 2
    g.add("f", ir.Flatten(), [prev])
    n, prev = c * hw * hw, "f"
    for j, m in enumerate(dense + [3]):
        w = rng.normal(size=(m, n)) / np.sqrt(n)
        g.add(f"d{j}", ir.Dense(weight=w.astype(np.float32), bias=(rng.normal(size=m) * bias_scale).astype(np.float32)), [prev])
        if pending:
            avg_gain[f"d{j}"], pending = pending, None
        prev, n = f"d{j}", m
        if j < len(dense):
            g.add(f"rd{j}", ir.ReLU(), [prev])
            prev = f"rd{j}"
    g.outputs = [prev]
    x = rng.random((16, channels, 8, 8)).astype(np.float32)
    return g, x, avg_gain


def population_of(g: ir.Graph, op: str) -> str:
    """The population an operator feeds (through structural operators)."""
    x = op
    while g.nodes[x].role not in ("neuron", "readout"):
        (x,) = g.users_of(x)
    return x


def weight_steps(g: ir.Graph, op: str, shape: tuple[int, ...]) -> np.ndarray:
    """The value of one mantissa LSB for every weight of ``op`` (before its exponent): the
    ``fixed.scale`` of the population it feeds, one value (layer scaling) or one per channel of
    that population, i.e. per output row of a Dense/Conv2d; a gain (Scale) is elementwise."""
    scale = np.asarray(g.nodes[population_of(g, op)].fixed.scale, dtype=np.float64)
    if scale.ndim == 0:
        return np.full(shape, float(scale))
    if g.nodes[op].kind == "Scale":
        return np.broadcast_to(scale, shape)
    per_channel = scale.reshape(scale.shape[0], -1)
    assert np.all(per_channel == per_channel[:, :1]), "one step per channel"
    assert per_channel.shape[0] == shape[0]
    return np.broadcast_to(per_channel[:, 0].reshape((-1,) + (1,) * (len(shape) - 1)), shape)


architectures = st.fixed_dictionaries({
    "seed": st.integers(0, 2**16),
    "convs": st.integers(0, 2),
    "pools": st.lists(st.sampled_from(["none", "avg", "max"]), min_size=2, max_size=2),
    "dense": st.lists(st.integers(2, 8), max_size=2),
    "channels": st.integers(1, 2),
})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arch=architectures, bits=st.integers(2, 9), scaling=st.sampled_from(["layer", "channel"]))
def test_quantised_parameters_fit_their_bits_and_dequantise_to_the_float_fields(arch, bits, scaling):
    ann, x, avg_gain = random_ann(**arch)
    snn = snc.compile(ann, x, passes=CONVERSION)
    q, ctx = quantize(snn, x, weight_bits=bits, scaling=scaling)
    reports = layer_reports(ctx)
    op_reports = {o["op"]: o for layer in reports.values() for o in layer["ops"]}
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    weighted = [n for n in q.topological_order() if q.nodes[n].kind in ("Dense", "Conv2d", "Scale")]
    assert weighted
    for name in weighted:
        node = q.nodes[name]
        fx = node.fixed
        assert fx is not None, name
        m = np.asarray(fx.weight)
        assert m.dtype.kind == "i", name
        if maxpool_part(node) is not None and maxpool_part(node).select:  # structural +-1 routing of the max-pool construction
            assert np.isin(m, (-1, 0, 1)).all() and fx.weight_exp == 0
            np.testing.assert_array_equal(node.weight, m)
            continue
        # The declared precision, and the symmetric range the pass documents.
        assert fx.weight_bits == bits, name
        assert lo <= m.min() and m.max() <= hi, name
        assert np.abs(m).max() <= 2 ** (bits - 1) - 1, name
        assert fx.weight_exp >= 0, name
        assert name in op_reports, f"no report entry for {name}"
        assert op_reports[name]["exponent"] == fx.weight_exp

        value = node.scale if node.kind == "Scale" else node.weight
        original = (snn.nodes[name].scale if node.kind == "Scale" else snn.nodes[name].weight).astype(np.float64)
        original = original * avg_gain.get(name, 1.0)
        step = weight_steps(q, name, m.shape) * 2.0 ** fx.weight_exp
        deq = m * step
        # The float field is the dequantised mantissa.
        np.testing.assert_allclose(value, deq, rtol=2e-7, atol=0, err_msg=name)
        # Within half a step of the original, except what the report counts as clipped.
        ideal = round_half_away(original / step)
        clipped = (ideal < lo) | (ideal > hi)
        assert op_reports[name]["clipped"] == int(clipped.sum()), name
        err = np.abs(original - deq)
        assert np.all(err[~clipped] <= 0.5 * step.max() * (1 + 1e-6) + 1e-12), name
        # SQNR, recomputed.
        noise = float(np.sum((original - deq) ** 2))
        sqnr = 10 * math.log10(float(np.sum(original**2)) / noise) if noise > 0 else math.inf
        if math.isinf(sqnr):
            assert math.isinf(op_reports[name]["sqnr_db"])
        else:
            assert op_reports[name]["sqnr_db"] == pytest.approx(sqnr, abs=0.01), name

    for name in q.nodes_with_role("neuron", "readout"):
        node, fx = q.nodes[name], q.nodes[name].fixed
        assert fx is not None and name in reports, name
        layer = reports[name]
        assert {"scale", "ops", "bias_exp", "bias_clipped"} <= set(layer)
        scale = np.asarray(fx.scale, dtype=np.float64)
        assert layer["scale"] == pytest.approx(float(scale.max()), rel=1e-12)
        mant = np.asarray(fx.bias_mant)
        assert mant.shape == tuple(node.shape) and mant.dtype.kind == "i"
        assert BIAS_MANT_RANGE[0] <= mant.min() and mant.max() <= BIAS_MANT_RANGE[1], name
        subtract = node.role == "neuron" and node.reset == "subtract"
        # 3-bit exponent; subtractive reset takes its bias as input in a units (64 v units).
        assert (6 <= fx.bias_exp <= 13) if subtract else (0 <= fx.bias_exp <= 7), (name, fx.bias_exp)
        if subtract:
            assert np.all((mant.astype(np.int64) << fx.bias_exp) % 64 == 0)
        b_step = np.broadcast_to(scale, node.shape) * 2.0**fx.bias_exp / 64.0
        b_deq = mant * b_step
        b_now = np.zeros(node.shape) if node.bias is None else node.bias
        np.testing.assert_allclose(b_now, b_deq, rtol=2e-7, atol=1e-30, err_msg=name)
        b_orig = np.zeros(node.shape) if snn.nodes[name].bias is None else snn.nodes[name].bias.astype(np.float64)
        if layer["bias_clipped"] == 0:
            assert np.all(np.abs(b_orig - b_deq) <= 0.5 * b_step * (1 + 1e-6) + 1e-12), name
        if node.role != "neuron":
            continue
        vth = np.asarray(fx.vth)
        assert vth.dtype.kind == "i" and vth.min() >= 1, name
        theta = np.broadcast_to(np.asarray(snn.nodes[name].threshold, np.float64), node.shape)
        q_n = np.broadcast_to(scale, node.shape)
        vth_n = np.broadcast_to(vth, node.shape)
        np.testing.assert_allclose(np.broadcast_to(node.threshold, node.shape), vth_n * q_n, rtol=2e-7, err_msg=name)
        if subtract:
            assert all(subtract_representable(int(v)) for v in np.unique(vth)), (name, np.unique(vth))
        assert vth.max() < VTH_LIMIT, (name, int(vth.max()))
        # m rounds at a granularity of 2**k for subtractive reset (k >= 0), of 1 otherwise: the
        # error is at most half of that.
        k = np.maximum(0, np.ceil(np.log2(np.maximum(theta / q_n, 1) / RECURRENT_MAX))) if subtract else np.zeros(node.shape)
        # vth ~ theta / step, rounded (at least 1: a threshold below one step becomes one step).
        tolerance = np.maximum(0.5 * 2**k * q_n, q_n - theta) * (1 + 1e-6)
        assert np.all(np.abs(vth_n * q_n - theta) <= tolerance), name


def test_layer_and_channel_scaling_on_a_known_matrix():
    """Hand-computed: a Dense layer with rows of peak 2.0 and 0.5, 4-bit weights (|m| <= 7)."""
    g = ir.Graph()
    g.add("x", ir.Input(shape=(2,)))
    w = np.array([[2.0, -0.9], [0.5, 0.2]], np.float32)
    g.add("d", ir.Dense(weight=w), ["x"])
    g.add("h", ir.IF(shape=(2,), threshold=1.1, reset="zero"), ["d"])
    g.add("o", ir.Dense(weight=np.eye(2, dtype=np.float32)), ["h"])
    g.add("out", ir.Readout(shape=(2,)), ["o"])
    g.outputs = ["out"]
    layer, _ = quantize(g, None, weight_bits=4, scaling="layer")
    # One step for the layer, 2.0 / 7: mantissas w * 3.5 = (7, -3.15; 1.75, 0.7) -> (7, -3; 2, 1);
    # threshold 1.1 * 3.5 = 3.85 -> 4.
    np.testing.assert_array_equal(layer.nodes["d"].fixed.weight, [[7, -3], [2, 1]])
    assert layer.nodes["h"].fixed.vth == 4
    assert layer.nodes["h"].fixed.scale == pytest.approx(2.0 / 7)
    np.testing.assert_allclose(layer.nodes["d"].weight, np.array([[7, -3], [2, 1]]) * 2.0 / 7, rtol=1e-6)
    assert float(layer.nodes["h"].threshold) == pytest.approx(4 * 2.0 / 7, rel=1e-6)
    channel, _ = quantize(g, None, weight_bits=4, scaling="channel")
    # Steps 2/7 and 0.5/7 per row: the second row becomes (7, 2.8 -> 3), its threshold 15.4 -> 15.
    np.testing.assert_array_equal(channel.nodes["d"].fixed.weight, [[7, -3], [7, 3]])
    np.testing.assert_array_equal(channel.nodes["h"].fixed.vth, [4, 15])
    np.testing.assert_allclose(channel.nodes["d"].weight, [[2.0, -6 / 7], [0.5, 1.5 / 7]], rtol=1e-6)


@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_a_threshold_beyond_17_bits_coarsens_the_weight_step(reset):
    g = ir.Graph()
    g.add("x", ir.Input(shape=(4,)))
    w = np.array([[1e-4, -5e-5, 2e-5, 1e-5], [3e-5, 1e-4, -1e-4, 0.0]], np.float32)
    g.add("d", ir.Dense(weight=w), ["x"])
    g.add("h", ir.IF(shape=(2,), threshold=1.0, reset=reset), ["d"])
    g.add("o", ir.Dense(weight=np.eye(2, dtype=np.float32)), ["h"])
    g.add("out", ir.Readout(shape=(2,)), ["o"])
    g.outputs = ["out"]
    q, ctx = quantize(g, None, weight_bits=8)
    # theta / step = 1.0 / (1e-4 / 127) = 1.27e6 > 2**17: the step becomes theta / (2**17 - 1), so
    # the threshold stays exact and the weights use fewer of their levels (1e-4 -> 13 steps).
    assert any("coarsened" in e["message"] for e in ctx.report)
    fx = q.nodes["h"].fixed
    assert 1 <= fx.vth < VTH_LIMIT
    assert float(q.nodes["h"].threshold) == pytest.approx(1.0, rel=0.01)  # the threshold itself is kept
    step = 1.0 / (VTH_LIMIT - 1)
    np.testing.assert_array_equal(q.nodes["d"].fixed.weight, np.sign(w) * np.floor(np.abs(w) / step + 0.5))
    assert q.nodes["d"].fixed.weight_exp == 0


# ---------------------------------------------------------------------------------------------
# Fixed-point semantics against hand-computed traces.


def one_layer(w: np.ndarray, weight_exp: int, vth: int, reset: str, bias_mant, bias_exp: int) -> ir.Graph:
    """Spike input -> Dense (integer weights) -> IF ``h`` -> identity -> membrane Readout; the
    ``fixed`` blocks are set by hand (float fields are placeholders: only fixed point runs)."""
    n_out, n_in = w.shape
    g = ir.Graph()
    g.add("x", ir.Input(shape=(n_in,), encoding="spikes"))
    g.add("d", ir.Dense(weight=w.astype(np.float32), fixed=ir.SynapseFixed(weight=w.astype(np.int32), weight_exp=weight_exp, weight_bits=9)), ["x"])
    g.add("h", ir.IF(shape=(n_out,), threshold=float(vth), reset=reset,
                     fixed=ir.NeuronFixed(vth=vth, bias_mant=np.asarray(bias_mant, np.int32), bias_exp=bias_exp, scale=1.0)), ["d"])
    eye = np.eye(n_out)
    g.add("o", ir.Dense(weight=eye.astype(np.float32), fixed=ir.SynapseFixed(weight=eye.astype(np.int32), weight_bits=2)), ["h"])
    g.add("out", ir.Readout(shape=(n_out,), fixed=ir.NeuronFixed(vth=2**17, bias_mant=np.zeros(n_out, np.int32), scale=1.0)), ["o"])
    g.outputs = ["out"]
    return g


SPIKES = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1], [0, 1, 0], [1, 0, 1], [0, 0, 0]], dtype=np.float32)  # (T, 3)


def test_reset_to_zero_follows_lavas_lif_by_hand():
    # Neuron 0: w = (3, -2, 5), bias 3 << 2 = 12 (v units), vth 4 -> fires when v > 256.
    #   t  a   u = a<<6   v = v + u + 12     spike
    #   1  3    192        204                -
    #   2  1     64        280   > 256         1 (v = 0)
    #   3  5    320        332                 1 (v = 0)
    #   4 -2   -128       -116                -
    #   5  8    512        408                 1 (v = 0)
    #   6  0      0         12                -
    # Neuron 1: w = (4, 0, 0), no bias: v reaches exactly 256 at t = 1 and does not fire (strict).
    #   v: 256, 512 -> fire (0), 0, 0, 256, 256.
    w = np.array([[3, -2, 5], [4, 0, 0]])
    g = one_layer(w, 0, vth=4, reset="zero", bias_mant=[3, 0], bias_exp=2)
    r = simulate(g, SPIKES[None], timesteps=6, arithmetic="fixed", rasters=[0])
    raster = r.populations["h"].rasters[0].astype(int)
    np.testing.assert_array_equal(raster[:, 0], [0, 1, 1, 0, 1, 0])
    np.testing.assert_array_equal(raster[:, 1], [0, 1, 0, 0, 0, 0])
    # The readout integrates the identity-weighted spikes: v = sum_t s << 6, output v * scale/64 / T.
    np.testing.assert_array_equal(r.outputs["out"][0], np.array([3, 1]) / 6)
    assert r.overflow == {}


def test_reset_by_subtraction_follows_the_recurrent_circuit_by_hand():
    # u = u + ((a + bias/64 - vth s[t-1]) << 6), v = u, s = v > vth << 6 (= 256); bias 1 << 6 = 64.
    #   t  a   a+1-4s[t-1]   u      spike
    #   1  3      4          256     -   (256 is not > 256)
    #   2  1      2          384     1
    #   3  5      2          512     1
    #   4 -2     -5          192     -
    #   5  8      9          768     1
    #   6  0     -3          576     1
    #   7  0     -3          384     1
    #   8  0     -3          192     -
    # Identical to the float rule 'v -= vth on spike' in a units: v = 4, 6|2, 8|4, 3, 12|8, 9|5, 6|2, 3.
    spikes = np.vstack([SPIKES, np.zeros((2, 3), np.float32)])
    g = one_layer(np.array([[3, -2, 5]]), 0, vth=4, reset="subtract", bias_mant=[1], bias_exp=6)
    r = simulate(g, spikes[None], timesteps=8, arithmetic="fixed", rasters=[0])
    np.testing.assert_array_equal(r.populations["h"].rasters[0][:, 0].astype(int), [0, 1, 1, 0, 1, 1, 1, 0])
    assert r.overflow == {}


def test_a_bias_that_is_not_a_multiple_of_64_is_refused_for_subtractive_reset():
    g = one_layer(np.array([[1, 1, 1]]), 0, vth=4, reset="subtract", bias_mant=[1], bias_exp=5)
    with pytest.raises(snc.errors.InvalidGraph, match="multiple of 64"):
        simulate(g, SPIKES[None], timesteps=6, arithmetic="fixed")


def test_weight_exponent_shifts_the_summed_input_with_floor():
    # w = (3, -5), exponent -1: per-step input floor(sum / 2).
    #   spikes (1,0): 3 >> 1 = 1;  (0,1): -5 >> 1 = -3;  (1,1): -2 >> 1 = -1;  (0,1): -3.  Sum -6
    # (rounding toward zero would give -4; the exact half-sum is -4.5).
    g = ir.Graph()
    g.add("x", ir.Input(shape=(2,), encoding="spikes"))
    g.add("d", ir.Dense(weight=np.array([[1.5, -2.5]], np.float32),
                        fixed=ir.SynapseFixed(weight=np.array([[3, -5]], np.int32), weight_exp=-1)), ["x"])
    g.add("out", ir.Readout(shape=(1,), fixed=ir.NeuronFixed(vth=2**17, bias_mant=np.zeros(1, np.int32), scale=1.0)), ["d"])
    g.outputs = ["out"]
    s = np.array([[[1, 0], [0, 1], [1, 1], [0, 1]]], np.float32)
    r = simulate(g, s, timesteps=4, arithmetic="fixed")
    assert r.outputs["out"][0, 0] == -6 / 4


def test_the_24_bit_current_wraps_as_documented_and_is_reported():
    # Zero reset: six inputs of weight 255 with exponent 7 all spiking: a = 6 * 255 * 128 = 195840,
    # a << 6 = 12533760 > 2**23, so u wraps to 12533760 - 2**24 = -4243456 every step: the neuron
    # is driven negative and never fires (without the wrap it would fire every step).
    g = one_layer(np.full((1, 6), 255), 7, vth=100, reset="zero", bias_mant=[0], bias_exp=0)
    s = np.ones((1, 8, 6), np.float32)
    r = simulate(g, s, timesteps=8, arithmetic="fixed", rasters=[0])
    assert not r.populations["h"].rasters[0].any()
    assert r.overflow["h"]["u_wraps"] == 8
    # Subtractive reset: one input of weight -255, exponent 7: u += -32640 << 6 = -2088960 per step.
    #   u: -2088960, -4177920, -6266880, -8355840, then -10444800 <= -2**23 wraps to +6332416:
    #   fires, and from then on u += (-32640 - 100) << 6 = -2095360: 4237056, 2141696, 46336, all
    #   above vth << 6 = 6400, so it fires at steps 5..8. One wrap.
    g = one_layer(np.full((1, 1), -255), 7, vth=100, reset="subtract", bias_mant=[0], bias_exp=6)
    r = simulate(g, np.ones((1, 8, 1), np.float32), timesteps=8, arithmetic="fixed", rasters=[0])
    np.testing.assert_array_equal(r.populations["h"].rasters[0][:, 0].astype(int), [0, 0, 0, 0, 1, 1, 1, 1])
    assert r.overflow["h"]["u_wraps"] == 1


def test_voltage_saturation_of_a_zero_reset_population_is_reported():
    # As above: u = -4243456 each step; v = -4243456, then -8486912 < -(2**23 - 1): saturates at
    # steps 2..8 (7 neuron-steps).
    g = one_layer(np.full((1, 6), 255), 7, vth=100, reset="zero", bias_mant=[0], bias_exp=0)
    r = simulate(g, np.ones((1, 8, 6), np.float32), timesteps=8, arithmetic="fixed")
    assert r.overflow["h"]["v_saturations"] == 7


def test_voltage_saturation_of_a_readout_is_reported():
    # Three inputs of weight 255, exponent 7: a = 97920, a << 6 = 6266880 per step (no wrap); the
    # integrator reaches 12533760 > 2**23 - 1 at step 2 and stays saturated: steps 2..8.
    g = ir.Graph()
    g.add("x", ir.Input(shape=(3,), encoding="spikes"))
    w = np.full((1, 3), 255)
    g.add("d", ir.Dense(weight=w.astype(np.float32), fixed=ir.SynapseFixed(weight=w.astype(np.int32), weight_exp=7)), ["x"])
    g.add("out", ir.Readout(shape=(1,), fixed=ir.NeuronFixed(vth=2**17, bias_mant=np.zeros(1, np.int32), scale=64.0)), ["d"])
    g.outputs = ["out"]
    r = simulate(g, np.ones((1, 8, 3), np.float32), timesteps=8, arithmetic="fixed")
    assert r.outputs["out"][0, 0] == (2**23 - 1) / 8  # saturated (v * scale/64 / T), as Lava's clip
    assert r.overflow["out"]["v_saturations"] == 7


# ---------------------------------------------------------------------------------------------
# A trained network: fixed point against float, and the report's agreement.


@pytest.fixture(scope="module")
def digits_mlp():
    """A small MLP trained briefly on the digits (a second), as an IR graph."""
    from examples import digits

    data = digits.load_data()
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 48), torch.nn.ReLU(), torch.nn.Linear(48, 32),
                                torch.nn.ReLU(), torch.nn.Linear(32, 10))
    digits.train(model, data, epochs=10)
    g = ir.Graph("digits_mlp")
    g.add("x", ir.Input(shape=(64,)))
    prev = "x"
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    for i, lin in enumerate(linears):
        g.add(f"fc{i}", ir.Dense(weight=lin.weight.detach().numpy(), bias=lin.bias.detach().numpy()), [prev])
        prev = f"fc{i}"
        if i < len(linears) - 1:
            g.add(f"relu{i}", ir.ReLU(), [prev])
            prev = f"relu{i}"
    g.outputs = [prev]
    flat = {k: v.reshape(len(v), -1) if k.startswith("x") else v for k, v in data.items()}
    return g, flat


def test_fixed_and_float_models_of_the_quantised_network_agree_and_the_report_says_how_well(digits_mlp):
    ann, data = digits_mlp
    calib, labels, t = data["x_train"][:300], data["y_train"][:300], 32
    snn = snc.compile(ann, calib, passes=CONVERSION)
    q, ctx = quantize(snn, calib, timesteps=t, weight_bits=8, labels=labels)
    (entry,) = [e for e in ctx.report if "agreement" in e]
    # Recomputed: float network before quantisation vs fixed point after, first 256 samples.
    before = simulate(snn, calib[:256], timesteps=t)
    after = simulate(q, calib[:256], timesteps=t, arithmetic="fixed")
    assert entry["agreement"] == float(np.mean(before.predictions == after.predictions))
    assert entry["accuracy_after"] == float(np.mean(after.predictions == labels[:256]))
    assert q.meta["quantized"]["calibration_agreement"] == entry["agreement"]
    # The float32 model of the quantised graph is the dequantised network: it predicts as the
    # integer one does on nearly every test sample.
    fixed = simulate(q, data["x_test"], labels=data["y_test"], timesteps=t, arithmetic="fixed")
    flt = simulate(q, data["x_test"], labels=data["y_test"], timesteps=t, arithmetic="float32")
    agree = float(np.mean(fixed.predictions == flt.predictions))
    print(f"fixed vs float32 on the quantised MLP: {100 * agree:.1f}% of {len(fixed.predictions)} test samples agree; "
          f"accuracy {100 * fixed.accuracy:.2f}% fixed, {100 * flt.accuracy:.2f}% float32")
    assert agree >= 0.97
    assert fixed.accuracy >= 0.9
    assert fixed.overflow == {}


# ---------------------------------------------------------------------------------------------
# Errors.


def test_average_pooling_without_padding_in_the_count_is_refused_naming_the_node():
    rng = np.random.default_rng(0)
    g = ir.Graph()
    g.add("x", ir.Input(shape=(1, 4, 4)))
    g.add("c", ir.Conv2d(weight=rng.normal(size=(2, 1, 3, 3)).astype(np.float32), padding=1), ["x"])
    g.add("r", ir.ReLU(), ["c"])
    g.add("pool", ir.AvgPool2d(kernel=2, stride=2, padding=1, count_include_pad=False), ["r"])
    g.add("f", ir.Flatten(), ["pool"])
    g.add("d", ir.Dense(weight=rng.normal(size=(3, 18)).astype(np.float32)), ["f"])
    g.outputs = ["d"]
    x = rng.random((8, 1, 4, 4)).astype(np.float32)
    snn = snc.compile(g, x, passes=CONVERSION)
    with pytest.raises(UnsupportedOperator, match="count_include_pad") as err:
        quantize(snn, x)
    assert err.value.node == "pool"


@pytest.mark.parametrize("bits", [1, 10, -3, 16])
def test_weight_bits_outside_2_to_9_are_refused(bits):
    g = ir.Graph()
    g.add("x", ir.Input(shape=(2,)))
    g.add("d", ir.Dense(weight=np.ones((2, 2), np.float32)), ["x"])
    g.add("out", ir.Readout(shape=(2,)), ["d"])
    g.outputs = ["out"]
    with pytest.raises(InvalidOption, match="weight_bits"):
        quantize(g, None, weight_bits=bits)


def test_zero_weight_bits_are_refused():
    g = ir.Graph()
    g.add("x", ir.Input(shape=(2,)))
    g.add("d", ir.Dense(weight=np.ones((2, 2), np.float32)), ["x"])
    g.add("out", ir.Readout(shape=(2,)), ["d"])
    g.outputs = ["out"]
    with pytest.raises(InvalidOption, match="weight_bits"):
        quantize(g, None, weight_bits=0)


def test_an_ann_graph_is_refused():
    g = ir.Graph()
    g.add("x", ir.Input(shape=(2,)))
    g.add("d", ir.Dense(weight=np.ones((2, 2), np.float32), bias=np.zeros(2, np.float32)), ["x"])
    g.add("r", ir.ReLU(), ["d"])
    g.add("o", ir.Dense(weight=np.ones((2, 2), np.float32)), ["r"])
    g.outputs = ["o"]
    with pytest.raises((UnsupportedOperator, InvalidOption), match="converted"):
        quantize(g, None)
