"""Lava backend: every exported network runs in Lava 0.10 (``.venv-lava`` / $SNC_LAVA_PYTHON) and
gives the same spikes, in every population at every step, as snc's fixed-point simulator with
one-step synaptic delay. These tests need the Lava environment and fail (never skip) without it:
`make test` builds it."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

import snc
import snc.ir as ir
from snc.backends.lava import check, export, lava_python
from snc.backends.sim import simulate
from snc.errors import BackendError, UnsupportedOperator
from snc.passes import CONVERSION


def _quantised(ann: ir.Graph, calib: np.ndarray, bits: int = 8, timesteps: int = 12) -> ir.Graph:
    snn = snc.compile(ann, calib=calib, passes=list(CONVERSION) + ["quantize"], timesteps=timesteps, weight_bits=bits)
    return snn


def _rand(rng, *shape, scale=0.5):
    return rng.normal(0, scale, shape).astype(np.float32)


# --- converted networks (reset by subtraction) ------------------------------------------------------
def ann_mlp(rng, encoding):
    g = ir.Graph()
    g.add("x", ir.Input(shape=(12,), encoding=encoding))
    g.add("d1", ir.Dense(weight=_rand(rng, 16, 12), bias=_rand(rng, 16, scale=0.2)), ["x"])
    g.add("r1", ir.ReLU(), ["d1"])
    g.add("d2", ir.Dense(weight=_rand(rng, 8, 16), bias=_rand(rng, 8, scale=0.2)), ["r1"])
    g.add("r2", ir.ReLU(), ["d2"])
    g.add("d3", ir.Dense(weight=_rand(rng, 4, 8)), ["r2"])
    g.outputs = ["d3"]
    return g, (12,)


def ann_conv_pool(rng, encoding, pool):
    g = ir.Graph()
    g.add("x", ir.Input(shape=(2, 8, 8), encoding=encoding))
    g.add("c1", ir.Conv2d(weight=_rand(rng, 4, 2, 3, 3), bias=_rand(rng, 4, scale=0.1), padding=1), ["x"])
    g.add("r1", ir.ReLU(), ["c1"])
    if pool == "max":
        g.add("p", ir.MaxPool2d(kernel=2, stride=2), ["r1"])
    elif pool == "avg":
        g.add("p", ir.AvgPool2d(kernel=2, stride=2), ["r1"])
    else:  # a strided convolution instead of pooling
        g.add("pc", ir.Conv2d(weight=_rand(rng, 4, 4, 2, 2), stride=2), ["r1"])
        g.add("p", ir.ReLU(), ["pc"])
    g.add("c2", ir.Conv2d(weight=_rand(rng, 3, 4, 3, 3), padding=(1, 0, 1, 0), groups=1), ["p"])
    g.add("r2", ir.ReLU(), ["c2"])
    g.add("f", ir.Flatten(), ["r2"])
    g.add("d", ir.Dense(weight=_rand(rng, 5, 3 * 4 * 2)), ["f"])
    g.outputs = ["d"]
    return g, (2, 8, 8)


def ann_residual(rng, encoding):
    g = ir.Graph()
    g.add("x", ir.Input(shape=(3, 6, 6), encoding=encoding))
    g.add("c0", ir.Conv2d(weight=_rand(rng, 4, 3, 3, 3), padding=1), ["x"])
    g.add("a", ir.ReLU(), ["c0"])
    g.add("c1", ir.Conv2d(weight=_rand(rng, 4, 4, 3, 3), padding=1, bias=_rand(rng, 4, scale=0.1)), ["a"])
    g.add("b", ir.ReLU(), ["c1"])
    g.add("c2", ir.Conv2d(weight=_rand(rng, 4, 4, 3, 3), padding=1), ["b"])
    g.add("sum", ir.Add(), ["c2", "a"])
    g.add("c", ir.ReLU(), ["sum"])
    g.add("cat", ir.Concat(axis=0), ["c", "a"])
    g.add("gap", ir.AvgPool2d(kernel=6, stride=6), ["cat"])
    g.add("f", ir.Flatten(), ["gap"])
    g.add("d", ir.Dense(weight=_rand(rng, 3, 8)), ["f"])
    g.outputs = ["d"]
    return g, (3, 6, 6)


def _samples(rng, encoding, shape, n, steps):
    if encoding == "spikes":
        return (rng.random((n, steps) + shape) < 0.3).astype(np.float32)
    if encoding == "rate":
        return rng.random((n,) + shape).astype(np.float32)
    return rng.random((n,) + shape).astype(np.float32)


CONVERTED = [
    ("mlp", "direct", 8), ("mlp", "spikes", 8), ("mlp", "rate", 4), ("mlp", "direct", 9),
    ("conv-max", "direct", 8), ("conv-max", "spikes", 8), ("conv-avg", "direct", 6), ("conv-avg", "rate", 8),
    ("conv-stride", "direct", 8), ("conv-stride", "spikes", 3),
    ("residual", "direct", 8), ("residual", "spikes", 8), ("residual", "direct", 5),
]


@pytest.mark.parametrize("kind, encoding, bits", CONVERTED, ids=[f"{k}-{e}-{b}bit" for k, e, b in CONVERTED])
def test_converted_networks_spike_for_spike(kind, encoding, bits):
    rng = np.random.default_rng(abs(hash((kind, encoding, bits))) % 2**32)
    if kind == "mlp":
        ann, shape = ann_mlp(rng, encoding)
    elif kind == "residual":
        ann, shape = ann_residual(rng, encoding)
    else:
        ann, shape = ann_conv_pool(rng, encoding, kind.split("-")[1])
    steps = 12
    calib = _samples(rng, "direct" if encoding != "spikes" else "spikes", shape, 32, steps)
    if encoding == "spikes":
        calib = calib.astype(bool).astype(np.float32)
    snn = _quantised(ann, calib, bits, steps)
    x = _samples(rng, encoding, shape, 3, steps)
    lava, ours, report = check(snn, x, timesteps=steps, seed=3)
    assert report["mismatches"] == 0, report
    total = sum(p.spikes.sum() for p in ours.populations.values() if p.kind == "IF")
    assert total > 0  # the comparison is not between two silent networks
    np.testing.assert_array_equal(lava.predictions, ours.predictions)
    for name, out in ours.outputs.items():
        np.testing.assert_array_equal(lava.outputs[name], out)  # readout potentials, bit for bit


# --- hand-built fixed-point networks: leaky neurons, reset to zero, overflow -------------------------
def lif_network(rng, du, dv, weight_scale, bias_exp, exp1=None, encoding="spikes"):
    g = ir.Graph()
    g.add("x", ir.Input(shape=(10,), encoding=encoding))
    w1 = rng.integers(-weight_scale, weight_scale + 1, (12, 10))
    if exp1 is not None and exp1 >= 7:
        w1[:3] = 127  # three neurons whose input alone can exceed the 24-bit current range
    exp1 = int(rng.integers(0, 3)) if exp1 is None else exp1
    g.add("d1", ir.Dense(weight=w1.astype(np.float32), fixed=ir.SynapseFixed(weight=w1.astype(np.int32), weight_exp=exp1)), ["x"])
    bias = rng.integers(-100, 300, 12)
    g.add("h1", ir.LIF(shape=(12,), threshold=1.0, reset="zero", decay_current=1.0, decay_voltage=0.0,
                       fixed=ir.NeuronFixed(vth=int(rng.integers(50, 400)), bias_mant=bias.astype(np.int32), bias_exp=bias_exp, du=du, dv=dv, scale=1.0)),
          ["d1"])
    w2 = rng.integers(-127, 128, (6, 12))
    g.add("d2", ir.Dense(weight=w2.astype(np.float32), fixed=ir.SynapseFixed(weight=w2.astype(np.int32), weight_exp=0)), ["h1"])
    g.add("h2", ir.LIF(shape=(6,), threshold=1.0, reset="zero",
                       fixed=ir.NeuronFixed(vth=int(rng.integers(20, 200)), bias_mant=np.zeros(6, np.int32), bias_exp=0, du=int(rng.integers(0, 4096)), dv=int(rng.integers(0, 4096)), scale=1.0)),
          ["d2"])
    w3 = rng.integers(-127, 128, (3, 6))
    g.add("d3", ir.Dense(weight=w3.astype(np.float32), fixed=ir.SynapseFixed(weight=w3.astype(np.int32), weight_exp=0)), ["h2"])
    g.add("out", ir.Readout(shape=(3,), fixed=ir.NeuronFixed(vth=2**17, bias_mant=np.zeros(3, np.int32), bias_exp=0, du=4095, dv=0, scale=1.0)), ["d3"])
    g.outputs = ["out"]
    return g


HAND = [(4095, 0, 127, 0, None), (2047, 0, 127, 3, None), (100, 300, 127, 6, None), (0, 4095, 60, 2, None),
        (3000, 1000, 127, 7, None),
        (4095, 0, 127, 0, 7),  # inputs near overflow: 127 << 7 per synapse, the 24-bit current wraps
        (1234, 17, 127, 5, 6)]


@pytest.mark.parametrize("du, dv, scale, bias_exp, exp1", HAND)
def test_leaky_zero_reset_networks_spike_for_spike(du, dv, scale, bias_exp, exp1):
    rng = np.random.default_rng(du * 7 + dv)
    g = lif_network(rng, du, dv, scale, bias_exp, exp1)
    x = (rng.random((3, 15, 10)) < 0.7).astype(np.float32)
    lava, ours, report = check(g, x, timesteps=15)
    assert report["mismatches"] == 0, report
    np.testing.assert_array_equal(lava.outputs["out"], ours.outputs["out"])
    if exp1 == 7:
        assert ours.overflow, "the near-overflow case must actually wrap"


def test_float_path_matches_within_float_tolerance():
    """Lava's floating_pt models (float64) against snc's float32 mode with delay timing: spikes may
    only differ where a membrane sits on a threshold to float precision, so almost all agree."""
    rng = np.random.default_rng(11)
    ann, shape = ann_conv_pool(rng, "direct", "max")
    calib = _samples(rng, "direct", shape, 32, 0)
    snn = snc.compile(ann, calib=calib, passes=CONVERSION, timesteps=20)
    x = _samples(rng, "direct", shape, 3, 0)
    lava, ours, report = check(snn, x, timesteps=20, cfg="float")
    total = sum(np.prod(r.shape) for p in ours.populations.values() for r in p.rasters.values())
    assert report["mismatches"] <= 0.005 * total, report
    np.testing.assert_array_equal(lava.predictions, ours.predictions)
    for name, out in ours.outputs.items():
        np.testing.assert_allclose(lava.outputs[name], out, rtol=0.05, atol=0.05)


def _dyadic(snn: ir.Graph, step: float = 1 / 64) -> ir.Graph:
    """Round every weight, bias, scale and threshold to a multiple of ``step``: with binary input
    spikes every sum is then exact in float32 and float64 alike, so no rounding can move a
    membrane across (or onto) a threshold differently in the two simulators."""
    def q(a):
        return (np.round(np.asarray(a, dtype=np.float64) / step) * step).astype(np.float32)

    for name in list(snn.nodes):
        node = snn.nodes[name]
        for attr in ("weight", "bias", "scale"):
            value = getattr(node, attr, None)
            if isinstance(value, (np.ndarray, np.floating)):
                setattr(node, attr, q(value))
        if getattr(node, "threshold", None) is not None:
            node.threshold = float(q(node.threshold))
    return snn


@pytest.mark.parametrize("kind", ["mlp", "conv-max", "residual"])
def test_float_path_is_spike_identical_without_rounding(kind):
    """Where float rounding cannot create a threshold tie, Lava's float path and snc's float mode
    with delay agree spike for spike, and their readouts agree to float precision."""
    rng = np.random.default_rng(21)
    ann, shape = {"mlp": lambda: ann_mlp(rng, "spikes"), "conv-max": lambda: ann_conv_pool(rng, "spikes", "max"),
                  "residual": lambda: ann_residual(rng, "spikes")}[kind]()
    calib = _samples(rng, "spikes", shape, 16, 20)
    snn = _dyadic(snc.compile(ann, calib=calib, passes=CONVERSION, timesteps=20))
    x = _samples(rng, "spikes", shape, 3, 20)
    lava, ours, report = check(snn, x, timesteps=20, cfg="float")
    spikes = sum(int(r.sum()) for p in ours.populations.values() for r in p.rasters.values())
    assert spikes > 0, "the network must actually spike"
    assert report["mismatches"] == 0, report
    for name, out in ours.outputs.items():
        np.testing.assert_allclose(lava.outputs[name], out, rtol=1e-6, atol=1e-6)


# --- the exported folder -----------------------------------------------------------------------------
def test_exported_folder_runs_on_its_own(tmp_path):
    """Copied elsewhere, `python run.py --steps 100 --input x.npy --out s.npz` works in the Lava
    environment, which has no snc installed."""
    rng = np.random.default_rng(5)
    ann, shape = ann_mlp(rng, "direct")
    calib = rng.random((32,) + shape).astype(np.float32)
    snn = _quantised(ann, calib, 8, 100)
    export(snn, tmp_path / "built")
    elsewhere = tmp_path / "somewhere" / "else"
    shutil.copytree(tmp_path / "built", elsewhere)
    x = rng.random((2,) + shape).astype(np.float32)
    np.save(elsewhere / "x.npy", x)
    py = lava_python()
    probe = subprocess.run([py, "-c", "import importlib.util as u; print(u.find_spec('snc') is None)"], capture_output=True,
                           text=True, cwd=elsewhere)
    assert probe.stdout.strip() == "True"  # no snc in the Lava environment
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    proc = subprocess.run([py, "run.py", "--steps", "100", "--input", "x.npy", "--out", "s.npz"], cwd=elsewhere,
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    ours = simulate(snn, x, timesteps=100, arithmetic="fixed", timing="delay", rasters=range(2))
    with np.load(elsewhere / "s.npz", allow_pickle=False) as out:
        labels = json.loads(str(out["labels"]))
        for key, name in labels.items():
            if f"spikes_{key}" in out.files:
                for i in range(2):
                    np.testing.assert_array_equal(out[f"spikes_{key}"][i], ours.populations[name].rasters[i])
    readme = (elsewhere / "README.md").read_text()
    assert "run.py" in readme and "lava-nc" in readme


NASTY = ["x\"); import os; os.system('touch PWNED') #", "line\nbreak", "'''", "__import__('os')", "ünïcode ⚡"]


def test_model_strings_never_become_code(tmp_path):
    rng = np.random.default_rng(9)
    g = ir.Graph()
    g.add(NASTY[4], ir.Input(shape=(6,)))
    g.add(NASTY[0], ir.Dense(weight=_rand(rng, 5, 6), bias=_rand(rng, 5, scale=0.1)), [NASTY[4]])
    g.add(NASTY[1], ir.ReLU(), [NASTY[0]])
    g.add(NASTY[2], ir.Dense(weight=_rand(rng, 4, 5)), [NASTY[1]])
    g.add(NASTY[3], ir.ReLU(), [NASTY[2]])
    g.add("out", ir.Dense(weight=_rand(rng, 2, 4)), [NASTY[3]])
    g.outputs = ["out"]
    snn = _quantised(g, rng.random((32, 6)).astype(np.float32), 8, 10)
    folder = export(snn, tmp_path / "nasty")
    code = (folder / "network.py").read_text() + (folder / "run.py").read_text()
    template = Path(snc.backends.lava.emitter.TEMPLATE)
    assert code == (template / "network.py").read_text() + (template / "run.py").read_text()  # same code for every network
    names = {p["name"] for p in json.loads((folder / "network.json").read_text())["populations"]}
    assert {NASTY[1], NASTY[3]} <= names  # the names survive, as data
    lava, ours, report = check(snn, rng.random((2, 6)).astype(np.float32), timesteps=10)
    assert report["mismatches"] == 0
    assert not (folder / "PWNED").exists() and not Path("PWNED").exists()


# --- what Lava cannot express, failures, timeouts ----------------------------------------------------
def test_inexpressible_networks_are_refused_at_export(tmp_path):
    rng = np.random.default_rng(2)
    ann, shape = ann_mlp(rng, "direct")
    calib = rng.random((32,) + shape).astype(np.float32)
    per_channel = snc.compile(ann, calib=calib, passes=list(CONVERSION) + ["quantize"], scaling="channel")
    with pytest.raises(UnsupportedOperator, match="per-neuron thresholds") as info:
        export(per_channel, tmp_path / "a")
    assert info.value.node in per_channel.nodes
    snn = snc.compile(ann, calib=calib, passes=CONVERSION)
    node = snn.nodes["r1"]
    snn.replace("r1", node.replace(refractory=2))
    with pytest.raises(UnsupportedOperator, match="refractory"):
        export(snn, tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def _lava_processes(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if marker in cmd:
                pids.append(int(entry.name))
    return pids


def test_a_timeout_is_one_clear_error_and_leaves_no_process(tmp_path):
    rng = np.random.default_rng(4)
    ann, shape = ann_conv_pool(rng, "direct", "max")
    snn = _quantised(ann, rng.random((16,) + shape).astype(np.float32), 8, 200)
    folder = export(snn, tmp_path / "slow")
    from snc.backends.lava import run_exported

    x = rng.random((50,) + shape)
    t0 = time.perf_counter()
    with pytest.raises(BackendError, match="did not finish within 3 s") as info:
        run_exported(folder, x, 200, "fixed", timeout=3.0)
    assert time.perf_counter() - t0 < 30
    assert "\n" not in str(info.value)
    time.sleep(1.0)
    assert _lava_processes(str(folder)) == []


def test_a_lava_failure_is_one_clear_error(tmp_path):
    rng = np.random.default_rng(6)
    ann, shape = ann_mlp(rng, "direct")
    snn = _quantised(ann, rng.random((16,) + shape).astype(np.float32), 8, 10)
    folder = export(snn, tmp_path / "broken")
    (folder / "params.npz").write_bytes(b"not an npz")
    from snc.backends.lava import run_exported

    with pytest.raises(BackendError, match="Lava run failed") as info:
        run_exported(folder, rng.random((1,) + shape), 10, "fixed", timeout=120)
    assert "\n" not in str(info.value)
    assert _lava_processes(str(folder)) == []


def test_missing_lava_environment_says_how_to_get_one(monkeypatch):
    monkeypatch.setenv("SNC_LAVA_PYTHON", "/nonexistent/python3.10")
    with pytest.raises(BackendError, match="SNC_LAVA_PYTHON"):
        lava_python()


# --- delays and recurrence: DelayDense ----------------------------------------------------------
def delayed_recurrent_network(rng, reset, du, dv, rec_delay, ff_delay):
    """x -> d1 -> (+ Delay(rec_delay) <- rec <- h1) -> h1 -> d2 -> Delay(ff_delay) -> h2 -> d3 -> out,
    with integer parameters set by hand (fixed point, as quantize would leave them)."""
    def dense(w, exp=0):
        return ir.Dense(weight=w.astype(np.float32), fixed=ir.SynapseFixed(weight=w.astype(np.int32), weight_exp=exp))

    g = ir.Graph("delays")
    g.add("x", ir.Input(shape=(8,), encoding="spikes"))
    g.add("d1", dense(rng.integers(-40, 120, (10, 8))), ["x"])
    g.add("sum", ir.Add(), ["d1"])
    vth = 256 if reset == "subtract" else int(rng.integers(100, 300))
    g.add("h1", ir.LIF(shape=(10,), threshold=1.0, reset=reset,
                       decay_current=1.0 if reset == "subtract" else 0.5, decay_voltage=0.0 if reset == "subtract" else 0.25,
                       fixed=ir.NeuronFixed(vth=vth, bias_mant=np.zeros(10, np.int32), bias_exp=6 if reset == "subtract" else 0,
                                            du=du, dv=dv, scale=1.0)), ["sum"])
    g.add("rec", dense(rng.integers(-90, 60, (10, 10))), ["h1"])
    g.add("z", ir.Delay(steps=rec_delay), ["rec"])
    g.set_inputs("sum", ["d1", "z"])
    g.add("d2", dense(rng.integers(-60, 127, (6, 10))), ["h1"])
    g.add("zz", ir.Delay(steps=ff_delay), ["d2"])
    g.add("h2", ir.LIF(shape=(6,), threshold=1.0, reset="zero",
                       fixed=ir.NeuronFixed(vth=int(rng.integers(40, 200)), bias_mant=np.zeros(6, np.int32), bias_exp=0,
                                            du=int(rng.integers(0, 4096)), dv=int(rng.integers(0, 4096)), scale=1.0)), ["zz"])
    g.add("d3", dense(rng.integers(-127, 128, (3, 6))), ["h2"])
    g.add("out", ir.Readout(shape=(3,), fixed=ir.NeuronFixed(vth=2**17, bias_mant=np.zeros(3, np.int32), bias_exp=0,
                                                               du=4095, dv=0, scale=1.0)), ["d3"])
    g.outputs = ["out"]
    return g


@pytest.mark.parametrize("reset, du, dv, rec_delay, ff_delay", [
    ("subtract", 4095, 0, 1, 2),   # IF with reset by subtraction (Lava's recurrent reset synapse) in a loop
    ("zero", 2048, 1024, 3, 1),    # leaky, reset to zero, a three-step loop
    ("zero", 300, 17, 2, 5),
])
def test_delayed_recurrent_networks_spike_for_spike(reset, du, dv, rec_delay, ff_delay):
    """Recurrent LIF networks with synaptic delays: snc's fixed-point simulator (delay timing)
    against Lava 0.10, whose DelayDense carries each Delay."""
    rng = np.random.default_rng(rec_delay * 10 + ff_delay)
    g = delayed_recurrent_network(rng, reset, du, dv, rec_delay, ff_delay)
    assert g.is_recurrent
    x = (rng.random((3, 20, 8)) < 0.5).astype(np.float32)
    lava, ours, report = check(g, x, timesteps=20)
    assert report["mismatches"] == 0, report
    assert ours.populations["h1"].spikes.sum() > 0 and ours.populations["h2"].spikes.sum() > 0
    np.testing.assert_array_equal(lava.outputs["out"], ours.outputs["out"])
