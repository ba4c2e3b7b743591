"""``balance``: data-based threshold balancing (Rueckauer et al. 2017).

Specification: each population's threshold is the p-th percentile of the positive activations of
the ANN layer it came from (computed here with numpy from the ANN's own ReLU outputs); the
weights leaving it are multiplied by that threshold, so with p = 100 the rate limit of the
balanced network reproduces the ANN's logits on the calibration data, however differently the
branches of a residual join are scaled."""
from __future__ import annotations

import numpy as np
import pytest

from snc.passes import CONVERSION
import snc
import snc.ir as ir
from snc.backends import analog
from snc.errors import CalibrationError
from snc.passes import PassContext, get
from snc.ir.annotations import maxpool_part


def close(got, want, rtol=1e-5, what=""):
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale, err_msg=what)


def rand(rng, *shape, scale=0.5):
    return (rng.normal(size=shape) * scale).astype(np.float32)


def convert(ann: ir.Graph) -> ir.Graph:
    ctx = PassContext()
    g = ann
    for name in ("fold-bn", "fold-affine", "convert"):
        g = get(name)(g, ctx)
    return g


def balance(snn: ir.Graph, calib: np.ndarray, p: float) -> tuple[ir.Graph, PassContext]:
    ctx = PassContext(calibration=calib, percentile=p)
    return get("balance")(snn, ctx), ctx


def relu_outputs(ann: ir.Graph, x: np.ndarray) -> dict[str, np.ndarray]:
    relus = [n for n, node in ann.nodes.items() if node.kind == "ReLU"]
    return analog.evaluate(ann, x, keep=relus)


def percentile_of_positive(a: np.ndarray, p: float) -> float:
    pos = np.sort(a[a > 0].astype(np.float64))
    # numpy's default ('linear') percentile, written out: rank p/100 * (n - 1), interpolated.
    rank = p / 100.0 * (len(pos) - 1)
    lo = int(np.floor(rank))
    hi = min(lo + 1, len(pos) - 1)
    return float(pos[lo] + (rank - lo) * (pos[hi] - pos[lo]))


def readout(graph: ir.Graph, x: np.ndarray, mode: str) -> np.ndarray:
    (name,) = graph.outputs
    return analog.evaluate(graph, x, mode=mode)[name]


def ann_logits(ann: ir.Graph, x: np.ndarray) -> np.ndarray:
    (name,) = ann.outputs
    return analog.evaluate(ann, x)[name]


# ---------------------------------------------------------------------------------------------
# Networks.


def mlp(rng):
    g = ir.Graph("mlp")
    g.add("x", ir.Input(shape=(10,)))
    g.add("d1", ir.Dense(weight=rand(rng, 16, 10, scale=1.5), bias=rand(rng, 16)), ["x"])
    g.add("r1", ir.ReLU(), ["d1"])
    g.add("d2", ir.Dense(weight=rand(rng, 12, 16, scale=0.2), bias=rand(rng, 12, scale=0.1)), ["r1"])
    g.add("r2", ir.ReLU(), ["d2"])
    g.add("d3", ir.Dense(weight=rand(rng, 4, 12), bias=rand(rng, 4)), ["r2"])
    g.outputs = ["d3"]
    return g, (10,)


def convnet(rng):
    g = ir.Graph("conv")
    g.add("x", ir.Input(shape=(2, 8, 8)))
    g.add("c1", ir.Conv2d(weight=rand(rng, 4, 2, 3, 3, scale=1.0), bias=rand(rng, 4), padding=1), ["x"])
    g.add("bn", ir.BatchNorm(mean=rand(rng, 4), var=np.full(4, 0.5, np.float32), gamma=np.full(4, 2.0, np.float32),
                             beta=rand(rng, 4)), ["c1"])
    g.add("r1", ir.ReLU(), ["bn"])
    g.add("ap", ir.AvgPool2d(kernel=2, stride=2), ["r1"])
    g.add("c2", ir.Conv2d(weight=rand(rng, 5, 4, 3, 3, scale=0.3), bias=rand(rng, 5), padding=(1, 0, 1, 0)), ["ap"])
    g.add("r2", ir.ReLU(), ["c2"])
    g.add("mp", ir.MaxPool2d(kernel=2, stride=2), ["r2"])
    g.add("f", ir.Flatten(), ["mp"])
    n = int(np.prod(g.infer_shapes()["f"]))
    g.add("d", ir.Dense(weight=rand(rng, 3, n), bias=rand(rng, 3)), ["f"])
    g.outputs = ["d"]
    return g, (2, 8, 8)


def residual(rng):
    """Two populations of very different scale (r1 large, r2 small) join in an Add, then a ReLU;
    r1 also reaches a Concat through a Flatten."""
    g = ir.Graph("residual")
    g.add("x", ir.Input(shape=(2, 5, 5)))
    g.add("c1", ir.Conv2d(weight=rand(rng, 3, 2, 3, 3, scale=5.0), bias=rand(rng, 3), padding=1), ["x"])
    g.add("r1", ir.ReLU(), ["c1"])
    g.add("c2", ir.Conv2d(weight=rand(rng, 3, 3, 3, 3, scale=0.02), bias=rand(rng, 3, scale=0.05), padding=1), ["r1"])
    g.add("r2", ir.ReLU(), ["c2"])
    g.add("c3", ir.Conv2d(weight=rand(rng, 3, 3, 1, 1, scale=3.0)), ["r2"])
    g.add("sum", ir.Add(), ["r1", "c3"])  # a population straight into a join
    g.add("r3", ir.ReLU(), ["sum"])
    g.add("f1", ir.Flatten(), ["r1"])
    g.add("f3", ir.Flatten(), ["r3"])
    g.add("cat", ir.Concat(axis=0), ["f3", "f1"])
    g.add("d", ir.Dense(weight=rand(rng, 4, 150, scale=0.1), bias=rand(rng, 4)), ["cat"])
    g.outputs = ["d"]
    return g, (2, 5, 5)


def relu6_net(rng, ceiling=6.0):
    g = ir.Graph("relu6")
    g.add("x", ir.Input(shape=(8,)))
    g.add("d1", ir.Dense(weight=rand(rng, 12, 8, scale=5.0), bias=rand(rng, 12)), ["x"])
    g.add("r1", ir.ReLU(ceiling=ceiling), ["d1"])
    g.add("d2", ir.Dense(weight=rand(rng, 3, 12), bias=rand(rng, 3)), ["r1"])
    g.outputs = ["d2"]
    return g, (8,)


NETS = [mlp, convnet, residual]


# ---------------------------------------------------------------------------------------------
# Thresholds.


@pytest.mark.parametrize("p", [99.9, 100.0, 50.0])
@pytest.mark.parametrize("make", NETS, ids=lambda f: f.__name__)
def test_thresholds_are_percentiles_of_the_ann_activations(make, p):
    rng = np.random.default_rng(0)
    ann, shape = make(rng)
    calib = rng.normal(size=(64,) + shape).astype(np.float32)
    acts = relu_outputs(ann, calib)
    snn = convert(ann)
    balanced, ctx = balance(snn, calib, p)
    balanced.validate()
    assert balanced.meta["balanced"] is True and balanced.meta["percentile"] == p
    for name, node in ann.nodes.items():
        if node.kind != "ReLU":
            continue
        a = acts[name]
        lam = percentile_of_positive(a, p)
        th = balanced[name].threshold
        assert isinstance(th, float)
        assert th == pytest.approx(lam, rel=1e-5), name
        cal = balanced[name].meta["calibration"]
        assert cal["lambda"] == th and cal["percentile"] == p and cal["samples"] == 64
        assert cal["max"] == pytest.approx(float(a.max()), rel=1e-5)
        assert cal["active_fraction"] == pytest.approx(np.count_nonzero(a > 0) / a.size, abs=2 / a.size)
        if p == 100.0:
            assert cal["clipped_fraction"] == 0.0
    (summary,) = [e for e in ctx.report if "thresholds" in e]
    for name, lam in summary["thresholds"].items():
        assert lam == pytest.approx(balanced[name].threshold, rel=1e-5, abs=1e-6)


def test_maxpool_units_count_in_the_pooled_populations_amplitude():
    """The relu(a - b) units of a 2x2 max pool share the threshold of the population they pool
    (their spikes and the pooled population's spikes are summed into the maximum), the +-1
    selections stay +-1, and the rate limit is still the ANN's max pooling."""
    rng = np.random.default_rng(1)
    ann, shape = convnet(rng)
    calib = rng.normal(size=(64,) + shape).astype(np.float32)
    r2 = relu_outputs(ann, calib)["r2"]  # (N, 5, 4, 2)
    snn = convert(ann)
    units = sorted(name for name, node in snn.nodes.items() if (maxpool_part(node) is not None and maxpool_part(node).unit and maxpool_part(node).pool == "mp"))
    assert len(units) == 2
    for p in (100.0, 99.9):
        balanced, _ = balance(snn, calib, p)
        lam = percentile_of_positive(r2.ravel(), p)
        assert balanced["r2"].threshold == pytest.approx(lam, rel=1e-5)
        for u in units:
            assert balanced[u].threshold == pytest.approx(lam, rel=1e-5)
        selections = [name for name, node in balanced.nodes.items() if maxpool_part(node) is not None and maxpool_part(node).select]
        assert selections
        for name in selections:
            assert set(np.unique(balanced[name].weight)) <= {-1.0, 0.0, 1.0}, name
    balanced, _ = balance(snn, calib, 100.0)
    x = calib[:16]  # with p = 100 nothing in the calibration set saturates
    np.testing.assert_allclose(
        analog.evaluate(balanced, x)[balanced.outputs[0]], analog.evaluate(ann, x)[ann.outputs[0]], rtol=1e-4, atol=1e-4
    )


# ---------------------------------------------------------------------------------------------
# Weights and the rate limit.


def test_outgoing_weights_are_multiplied_by_the_source_threshold():
    rng = np.random.default_rng(0)
    ann, shape = mlp(rng)
    calib = rng.normal(size=(50,) + shape).astype(np.float32)
    snn = convert(ann)
    balanced, _ = balance(snn, calib, 100.0)
    lam1, lam2 = balanced["r1"].threshold, balanced["r2"].threshold
    assert lam1 > 1.5 * lam2 or lam2 > 1.5 * lam1  # the two layers really are scaled differently
    np.testing.assert_array_equal(balanced["d1"].weight, snn["d1"].weight)  # fed by the input: unchanged
    np.testing.assert_allclose(balanced["d2"].weight, snn["d2"].weight * np.float32(lam1), rtol=1e-6)
    np.testing.assert_allclose(balanced["d3"].weight, snn["d3"].weight * np.float32(lam2), rtol=1e-6)
    # Biases are currents into the population itself: untouched.
    np.testing.assert_array_equal(balanced["r1"].bias, snn["r1"].bias)
    np.testing.assert_array_equal(balanced["readout"].bias, snn["readout"].bias)
    # The argument is not modified.
    assert snn["r1"].threshold == 1.0 and "balanced" not in snn.meta


@pytest.mark.parametrize("make", NETS, ids=lambda f: f.__name__)
def test_rate_limit_equals_ann_logits_when_nothing_saturates(make):
    rng = np.random.default_rng(2)
    ann, shape = make(rng)
    calib = rng.normal(size=(64,) + shape).astype(np.float32)
    want = ann_logits(ann, calib)
    snn = convert(ann)
    # Before balancing, thresholds of 1 clip every activation above 1: the rate limit is wrong.
    assert not np.allclose(readout(snn, calib, "rate"), want, rtol=1e-3, atol=1e-3)
    balanced, _ = balance(snn, calib, 100.0)
    close(readout(balanced, calib, "rate"), want, rtol=1e-4)
    # Every population's rate is its ANN activation divided by its threshold, within [0, 1].
    pops = [n for n, node in balanced.nodes.items() if node.kind == "IF"]
    rates = analog.evaluate(balanced, calib, keep=pops, mode="rate")
    acts = relu_outputs(ann, calib)
    for name in pops:
        assert rates[name].min() >= 0 and rates[name].max() <= 1
        if name in acts:
            close(rates[name] * balanced[name].threshold, acts[name], rtol=1e-4, what=name)


def test_residual_join_of_differently_scaled_populations():
    rng = np.random.default_rng(3)
    ann, shape = residual(rng)
    calib = rng.normal(size=(64,) + shape).astype(np.float32)
    snn = convert(ann)
    balanced, _ = balance(snn, calib, 100.0)
    lam = {n: balanced[n].threshold for n in ("r1", "r2", "r3")}
    assert lam["r1"] > 10 * lam["r2"]  # very different scales meet in the Add
    # r1 feeds the Add directly: its spikes reach it through a gain equal to its threshold.
    (gain,) = [u for u in balanced.inputs_of("sum") if u != "c3"]
    assert balanced[gain].kind == "Scale" and balanced.inputs_of(gain) == ["r1"]
    assert float(balanced[gain].scale) == pytest.approx(lam["r1"], rel=1e-6)
    np.testing.assert_allclose(balanced["c3"].weight, snn["c3"].weight * np.float32(lam["r2"]), rtol=1e-6)
    close(readout(balanced, calib, "rate"), ann_logits(ann, calib), rtol=1e-4)
    # Fresh samples inside the calibrated range behave the same way.
    fresh = (rng.normal(size=(32,) + shape) * 0.5).astype(np.float32)
    rates = analog.evaluate(balanced, fresh, keep=["r1", "r2", "r3"], mode="rate")
    if all(rates[n].max() < 1 for n in rates):
        close(readout(balanced, fresh, "rate"), ann_logits(ann, fresh), rtol=1e-4)


def test_saturation_with_a_lower_percentile_clips_to_the_threshold():
    rng = np.random.default_rng(4)
    ann, shape = mlp(rng)
    calib = rng.normal(size=(200,) + shape).astype(np.float32)
    snn = convert(ann)
    balanced, _ = balance(snn, calib, 90.0)
    rates = analog.evaluate(balanced, calib, keep=["r1"], mode="rate")["r1"]
    a = relu_outputs(ann, calib)["r1"]
    lam = balanced["r1"].threshold
    close(rates, np.clip(a / lam, 0, 1), rtol=1e-4)
    cal = balanced["r1"].meta["calibration"]
    assert cal["clipped_fraction"] == pytest.approx(np.count_nonzero(a > lam) / a.size, abs=2 / a.size)
    assert 0 < cal["clipped_fraction"] < 0.2


# ---------------------------------------------------------------------------------------------
# Edge cases.


def test_calibration_missing_or_unusable():
    rng = np.random.default_rng(0)
    ann, shape = mlp(rng)
    snn = convert(ann)
    calib = rng.normal(size=(8,) + shape).astype(np.float32)
    cases = [
        PassContext(calibration=None),
        PassContext(calibration=np.zeros((0,) + shape, np.float32)),
        PassContext(calibration=calib, percentile=0.0),
        PassContext(calibration=calib, percentile=100.5),
    ]
    for ctx in cases:
        with pytest.raises(CalibrationError) as info:
            get("balance")(snn, ctx)
        assert "\n" not in str(info.value)
    with pytest.raises(CalibrationError) as info:
        get("balance")(snn, PassContext(calibration=np.zeros((8, 11), np.float32)))
    assert info.value.node == "x" and "'x'" in str(info.value) and "\n" not in str(info.value)
    # The public entry point: the default pipeline balances, and needs data for it.
    with pytest.raises(CalibrationError):
        snc.compile(ann)


def test_population_never_active_keeps_threshold_one_and_is_reported():
    rng = np.random.default_rng(0)
    ann, shape = mlp(rng)
    ann.replace("d2", ann["d2"].replace(weight=np.zeros_like(ann["d2"].weight), bias=np.full(12, -1.0, np.float32)))
    calib = rng.normal(size=(32,) + shape).astype(np.float32)
    snn = convert(ann)
    balanced, ctx = balance(snn, calib, 99.9)
    assert balanced["r2"].threshold == 1.0
    assert balanced["r2"].meta["calibration"]["active_fraction"] == 0.0
    notes = [e for e in ctx.report if e.get("node") == "r2"]
    assert len(notes) == 1 and "'r2'" in notes[0]["message"] and "never active" in notes[0]["message"]
    assert balanced["r1"].threshold != 1.0
    close(readout(balanced, calib, "rate"), ann_logits(ann, calib), rtol=1e-4)


@pytest.mark.parametrize("p", [100.0, 99.9])
def test_relu6_ceiling_caps_the_threshold(p):
    rng = np.random.default_rng(0)
    ann, shape = relu6_net(rng)
    calib = rng.normal(size=(64,) + shape).astype(np.float32)
    pre = analog.evaluate(ann, calib, keep=["d1"])["d1"]
    assert percentile_of_positive(pre, p) > 6  # without the cap lambda would exceed 6
    snn = convert(ann)
    balanced, _ = balance(snn, calib, p)
    assert balanced["r1"].threshold == 6.0
    np.testing.assert_allclose(balanced["d2"].weight, snn["d2"].weight * np.float32(6.0), rtol=1e-6)
    # A rate of 1 stands for 6: the rate limit is the ReLU6 network exactly.
    close(readout(balanced, calib, "rate"), ann_logits(ann, calib), rtol=1e-4)


def test_ceiling_above_the_activations_does_not_raise_the_threshold():
    rng = np.random.default_rng(0)
    ann, shape = relu6_net(rng, ceiling=1000.0)
    calib = rng.normal(size=(64,) + shape).astype(np.float32)
    a = relu_outputs(ann, calib)["r1"]
    balanced, _ = balance(convert(ann), calib, 100.0)
    assert balanced["r1"].threshold == pytest.approx(float(a.max()), rel=1e-5)


def test_balancing_twice_changes_nothing():
    rng = np.random.default_rng(0)
    ann, shape = mlp(rng)
    calib = rng.normal(size=(32,) + shape).astype(np.float32)
    once, _ = balance(convert(ann), calib, 100.0)
    twice, ctx = balance(once, calib, 100.0)
    assert "already balanced" in ctx.report[-1]["message"]
    for name in ("r1", "r2"):
        assert twice[name].threshold == once[name].threshold
    np.testing.assert_array_equal(twice["d2"].weight, once["d2"].weight)


def test_compile_records_the_thresholds_in_the_report():
    rng = np.random.default_rng(0)
    ann, shape = mlp(rng)
    calib = rng.normal(size=(40,) + shape).astype(np.float32)
    snn = snc.compile(ann, calib, percentile=100.0, passes=CONVERSION)
    assert snn.meta["passes"] == ["fold-bn", "fold-affine", "convert", "balance"]
    (entry,) = [e for e in snn.meta["report"] if e["pass"] == "balance"]
    acts = relu_outputs(ann, calib)
    for name in ("r1", "r2"):
        assert entry["thresholds"][name] == pytest.approx(float(acts[name].max()), rel=1e-5)
    close(readout(snn, calib, "rate"), ann_logits(ann, calib), rtol=1e-4)
