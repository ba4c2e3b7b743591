"""snc's NeuroBench metrics (snc/metrics.py) against the NeuroBench harness itself (neurobench 2.3.0,
run in the oracle environment by tests/oracles/neurobench_run.py) on the same snnTorch networks.

Each network is built once from plain arrays (the builder lives in the runner, which imports no
neurobench at module level), exported by snnTorch's own ``export_to_nir``, read by snc and
simulated with the same inputs; the harness rebuilds it from the same arrays in its own process.
The networks:

* ``mlp``: Linear 4->3 -> Leaky -> Linear 3->2 -> Leaky (the checked example of ORACLES.md, 3 of
  18 weights zero, snnTorch's default subtractive reset), 4 samples x 5 steps, batches of 2;
* ``conv``: Conv2d 2->3 (3x3, padding 1, bias, 13 of 54 weights zero) -> Leaky -> AvgPool2d(2)
  -> Flatten -> Linear 27->4 (bias, zeros) -> Leaky, reset to zero, 6 samples x 8 steps, batches of 3.

Inputs: binary spikes; 0.5 x those spikes (a NIR Scale before the first layer in snc, the scaled
values in the harness: the MAC branch, step by step); and a constant analog input (snc's direct
encoding; the same value at every step in the harness), one batch of which holds only 0/1 values.

ActivationSparsity, SynapticOperations (Effective_MACs, Effective_ACs, Dense) and
ConnectionSparsity must be identical. MembraneUpdates follows a different rule in snc (a neuron
counts when its input is non-zero; the harness counts a changed membrane, which a leak changes
without input and two consecutive resets to zero leave unchanged): the two numbers differ, and
each is reproduced independently from snnTorch's own membrane traces.

The oracle environment: $SNC_ORACLE_PYTHON, else the repository's .venv-oracles (``make oracles``).
With the variable set, an unusable interpreter fails the tests; without it and without the
folder they are skipped.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from snc import metrics
from snc.backends.sim import simulate
from snc.backends.sim.recorders import NeuroBenchCounter
from snc.frontends.nir import load_nir

ROOT = Path(__file__).resolve().parents[1]
RUNNER = ROOT / "tests" / "oracles" / "neurobench_run.py"


def _runner_module():
    spec = importlib.util.spec_from_file_location("neurobench_run", RUNNER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def oracle_python() -> str:
    env = os.environ.get("SNC_ORACLE_PYTHON")
    if env:
        return env  # set: anything unusable is a failure, reported by the run below
    default = ROOT / ".venv-oracles" / "bin" / "python"
    if not default.exists():
        pytest.skip("no oracle environment: SNC_ORACLE_PYTHON unset and .venv-oracles absent (run `make oracles`)")
    return str(default)


# --- the networks, as plain arrays ---------------------------------------------------------------
def _mlp(arrays: dict) -> dict:
    arrays["mlp.fc1.w"] = np.array([[.9, 0, .5, .3], [.2, .8, 0, .6], [.4, .4, .4, 0]], np.float32)
    arrays["mlp.fc1.b"] = np.zeros(3, np.float32)
    arrays["mlp.fc2.w"] = np.array([[1., .5, .7], [.6, 1.1, .9]], np.float32)
    arrays["mlp.fc2.b"] = np.zeros(2, np.float32)
    for name, n in (("l1", 3), ("l2", 2)):
        arrays[f"mlp.{name}.beta"] = np.full(n, 0.9, np.float32)
        arrays[f"mlp.{name}.thr"] = np.ones(n, np.float32)
    n, t, f = 4, 5, 4
    x_bin = ((np.arange(n * t * f).reshape(n, t, f) * 7) % 3 == 0).astype(np.float32)
    analog = np.array([[0.0, 0.3, 1.0, 2.0], [0.5, 0.0, 0.0, 1.5],   # batch 1: non-binary -> MACs
                       [1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 1.0]],  # batch 2: only 0/1 -> ACs
                      np.float32)
    layers = [{"kind": "Linear", "weight": "mlp.fc1.w", "bias": "mlp.fc1.b"},
              {"kind": "Leaky", "beta": "mlp.l1.beta", "threshold": "mlp.l1.thr", "reset": "subtract"},
              {"kind": "Linear", "weight": "mlp.fc2.w", "bias": "mlp.fc2.b"},
              {"kind": "Leaky", "beta": "mlp.l2.beta", "threshold": "mlp.l2.thr", "reset": "subtract", "output": True}]
    return {"layers": layers, "batch_size": 2, "spikes": x_bin, "analog": analog, "input_shape": (f,),
            "nir": {"reset": "subtract", "reset_timing": "next_step"}, "populations": ("1", "3")}


def _conv(arrays: dict) -> dict:
    rng = np.random.default_rng(7)
    w1 = rng.normal(0, 0.6, (3, 2, 3, 3)).astype(np.float32)
    w1[rng.random(w1.shape) < 0.25] = 0.0
    w2 = rng.normal(0, 0.9, (4, 27)).astype(np.float32)
    w2[rng.random(w2.shape) < 0.3] = 0.0
    arrays.update({"conv.c1.w": w1, "conv.c1.b": np.array([0.05, 0.0, -0.03], np.float32),
                   "conv.fc.w": w2, "conv.fc.b": np.array([0.0, 0.02, 0.0, 0.01], np.float32),
                   "conv.l1.beta": np.full((3, 6, 6), 0.85, np.float32), "conv.l1.thr": np.full((3, 6, 6), 0.8, np.float32),
                   "conv.l2.beta": np.full(4, 0.9, np.float32), "conv.l2.thr": np.ones(4, np.float32)})
    n, t = 6, 8
    x_bin = (rng.random((n, t, 2, 6, 6)) < 0.3).astype(np.float32)
    analog = rng.uniform(0.0, 1.5, (n, 2, 6, 6)).astype(np.float32)
    analog[rng.random(analog.shape) < 0.4] = 0.0
    analog[3:] = (analog[3:] > 0.7).astype(np.float32)  # the second batch holds only 0/1
    layers = [{"kind": "Conv2d", "weight": "conv.c1.w", "bias": "conv.c1.b", "stride": 1, "padding": 1},
              {"kind": "Leaky", "beta": "conv.l1.beta", "threshold": "conv.l1.thr", "reset": "zero"},
              {"kind": "AvgPool2d", "kernel": 2},
              {"kind": "Flatten"},
              {"kind": "Linear", "weight": "conv.fc.w", "bias": "conv.fc.b"},
              {"kind": "Leaky", "beta": "conv.l2.beta", "threshold": "conv.l2.thr", "reset": "zero", "output": True}]
    return {"layers": layers, "batch_size": 3, "spikes": x_bin, "analog": analog, "input_shape": (2, 6, 6),
            "nir": {}, "populations": ("1", "5")}


CASES = ("binary", "real", "analog")


def _harness_data(net: dict, case: str) -> np.ndarray:
    """(samples, steps, *features), as NeuroBench's SNNTorchModel takes it."""
    if case == "binary":
        return net["spikes"]
    if case == "real":
        return 0.5 * net["spikes"]
    t = net["spikes"].shape[1]
    return np.repeat(net["analog"][:, None], t, axis=1)


# --- snc's side ----------------------------------------------------------------------------------
def _nir_file(torch_net, net: dict, case: str, path: Path) -> Path:
    """snnTorch's export; for the 0.5 x spikes case a NIR Scale is put between the input and the
    first layer (snc's spike input takes only 0/1)."""
    import nir
    from snntorch.export_nir import export_to_nir

    g = export_to_nir(torch_net, torch.zeros((1,) + net["input_shape"]), ignore_dims=[0])
    if case == "real":
        nodes = dict(g.nodes)
        nodes["half"] = nir.Scale(scale=np.full(net["input_shape"], 0.5, np.float32))
        edges = [e for e in g.edges if e[0] != "input"] + [("input", "half")]
        edges += [("half", dst) for src, dst in g.edges if src == "input"]
        g = nir.NIRGraph(nodes=nodes, edges=edges)
    nir.write(str(path), g)
    return path


def _snc_run(torch_net, net: dict, case: str, tmp: Path):
    graph = load_nir(_nir_file(torch_net, net, case, tmp / f"{case}.nir"),
                     encoding="direct" if case == "analog" else "spikes", **net["nir"])
    x = net["analog"] if case == "analog" else net["spikes"].astype(bool)
    steps = net["spikes"].shape[1]
    r = simulate(graph, x, timesteps=steps, batch_size=net["batch_size"], recorders=[NeuroBenchCounter()],
                 rasters=range(len(x)))
    return graph, r


def _snntorch_trace(torch_net, x: np.ndarray):
    """snnTorch's own run of the Sequential, step by step (as SNNTorchModel drives it, one reset
    per batch; state carries no information across batches, so one batch of all samples is the
    same): each Leaky's spikes, its input current and its membrane before and after, (T, N, ...)."""
    from snntorch import Leaky, utils

    rec: dict[int, dict[str, list]] = {}

    def pre(i):
        def hook(mod, args):
            rec[i]["inp"].append(args[0].detach().clone())
            rec[i]["before"].append(mod.mem.detach().clone() if mod.mem.shape == args[0].shape else torch.zeros_like(args[0]))
        return hook

    def post(i):
        def hook(mod, args, out):
            rec[i]["spk"].append((out[0] if isinstance(out, tuple) else out).detach().clone())
            rec[i]["after"].append(mod.mem.detach().clone())
        return hook

    handles = []
    for i, m in enumerate(torch_net):
        if isinstance(m, Leaky):
            rec[i] = {"inp": [], "before": [], "spk": [], "after": []}
            handles += [m.register_forward_pre_hook(pre(i)), m.register_forward_hook(post(i))]
    utils.reset(torch_net)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    with torch.no_grad():
        for t in range(xt.shape[1]):
            torch_net(xt[:, t])
    for h in handles:
        h.remove()
    return {i: {k: torch.stack(v).numpy() for k, v in d.items()} for i, d in rec.items()}


# --- the oracle run (one subprocess for every network and case) ----------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_both(oracle_python(), tmp_path_factory.mktemp("neurobench"))


def run_both(python: str, tmp: Path) -> dict:
    """Every network and case through the harness (one subprocess) and through snc."""
    torch.set_num_threads(1)
    arrays: dict[str, np.ndarray] = {}
    nets = {"mlp": _mlp(arrays), "conv": _conv(arrays)}
    for net in nets.values():
        net["cases"] = CASES
    # The same MLP and analog data in one batch of 4: the AC/MAC choice is made per batch.
    nets["mlp_whole"] = {**nets["mlp"], "batch_size": 4, "cases": ("analog",)}
    for name, net in nets.items():
        for case in net["cases"]:
            arrays[f"{name}/{case}"] = _harness_data(net, case).astype(np.float32)
    spec = {"networks": {name: {"layers": net["layers"], "batch_size": net["batch_size"], "cases": list(net["cases"])}
                         for name, net in nets.items()}}
    (tmp / "spec.json").write_text(json.dumps(spec))
    np.savez(tmp / "arrays.npz", **arrays)
    try:
        done = subprocess.run([python, str(RUNNER), str(tmp / "spec.json"), str(tmp / "arrays.npz"), str(tmp / "out.json")],
                              capture_output=True, text=True, cwd=tmp)
    except OSError as exc:
        pytest.fail(f"oracle interpreter {python!r} cannot run: {exc}")
    assert done.returncode == 0, f"neurobench_run.py failed under {python}:\n{done.stderr[-3000:]}"
    oracle = json.loads((tmp / "out.json").read_text())

    build = _runner_module().build
    out = {}
    for name, net in nets.items():
        for case in net["cases"]:
            torch_net = build(net["layers"], arrays)
            case_dir = tmp / f"{name}_{case}"
            case_dir.mkdir()
            graph, r = _snc_run(torch_net, net, case, case_dir)
            out[name, case] = {"net": net, "graph": graph, "result": r, "snc": metrics.neurobench(graph, r),
                               "oracle": oracle[name][case], "trace": _snntorch_trace(build(net["layers"], arrays),
                                                                                      arrays[f"{name}/{case}"])}
    out["_versions"] = oracle["_versions"]
    return out


PAIRS = [(n, c) for n in ("mlp", "conv") for c in CASES] + [("mlp_whole", "analog")]


@pytest.mark.parametrize("name, case", PAIRS)
def test_harness_reported_no_metric_error(runs, name, case):
    """A metric that raises comes back as 0.0 with only a printed line: none may have raised."""
    assert runs[name, case]["oracle"]["errors"] == []


@pytest.mark.parametrize("name, case", PAIRS)
def test_snc_simulates_the_same_spikes_as_snntorch(runs, name, case):
    run = runs[name, case]
    r, trace = run["result"], run["trace"]
    for pop, layer in zip(run["net"]["populations"], sorted(trace)):
        ref = trace[layer]["spk"] > 0  # (T, N, ...)
        got = np.stack([r.populations[pop].rasters[i] for i in range(ref.shape[1])], axis=1)
        assert got.shape[:2] == ref.shape[:2]
        assert np.array_equal(got.reshape(ref.shape[0], ref.shape[1], -1), ref.reshape(ref.shape[0], ref.shape[1], -1))
    assert sum(int((t["spk"] > 0).sum()) for t in trace.values()) > 0


@pytest.mark.parametrize("name, case", PAIRS)
def test_activation_sparsity_and_synaptic_operations_equal_the_harness(runs, name, case):
    run = runs[name, case]
    ours, theirs = run["snc"], run["oracle"]["results"]
    assert ours["ActivationSparsity"] == pytest.approx(theirs["ActivationSparsity"], rel=0, abs=1e-12)
    for key in ("Effective_MACs", "Effective_ACs", "Dense"):
        assert ours["SynapticOperations"][key] == pytest.approx(theirs["SynapticOperations"][key], rel=1e-12, abs=0), key
    assert ours["ConnectionSparsity"] == theirs["ConnectionSparsity"]


def test_each_counting_branch_is_exercised(runs):
    """Not a vacuous match: the cases reach ACs only, MACs and ACs in the same run, and MACs from
    the scaled spikes; zero weights are present."""
    nb = {k: v["oracle"]["results"] for k, v in runs.items() if k != "_versions"}
    assert nb["mlp", "binary"]["SynapticOperations"]["Effective_MACs"] == 0
    assert nb["mlp", "binary"]["SynapticOperations"]["Effective_ACs"] > 0
    for name in ("mlp", "conv"):
        assert nb[name, "real"]["SynapticOperations"]["Effective_MACs"] > 0
        assert nb[name, "analog"]["SynapticOperations"]["Effective_MACs"] > 0
        assert nb[name, "analog"]["SynapticOperations"]["Effective_ACs"] > 0  # the all-0/1 batch
        assert nb[name, "binary"]["ConnectionSparsity"] > 0
    # The pooled spikes after AvgPool2d (0.25 steps) make the conv net's Linear count MACs.
    assert nb["conv", "binary"]["SynapticOperations"]["Effective_MACs"] > 0
    # Dense by hand: a 3x3 kernel with padding 1 over 6 positions reaches 4 x 3 + 2 x 2 = 16 pairs
    # per axis, so the conv does 16 x 16 x 2 x 3 per step; the Linear 27 x 4; 8 steps.
    assert nb["conv", "binary"]["SynapticOperations"]["Dense"] == 8 * (16 * 16 * 2 * 3 + 27 * 4)


def test_the_ac_mac_choice_is_made_per_batch_in_both_tools(runs):
    """NeuroBench decides AC or MAC once per layer call, i.e. per step over the whole batch: the
    analog MLP data has one batch of 0/1 values when batched by 2, none when batched by 4. snc
    decides per step over its simulation batch, so it equals the harness at the same batch size."""
    by2, by4 = runs["mlp", "analog"], runs["mlp_whole", "analog"]
    assert by4["snc"]["SynapticOperations"] == by4["oracle"]["results"]["SynapticOperations"]
    assert by2["snc"]["SynapticOperations"] == by2["oracle"]["results"]["SynapticOperations"]
    assert by4["oracle"]["results"]["SynapticOperations"]["Effective_MACs"] > by2["oracle"]["results"]["SynapticOperations"]["Effective_MACs"]


def test_the_checked_example_of_oracles_md(runs):
    """ORACLES.md's run of this MLP (scalar beta there, per-neuron here: the same values)."""
    b, r = runs["mlp", "binary"]["oracle"]["results"], runs["mlp", "real"]["oracle"]["results"]
    assert (b["ActivationSparsity"], b["ConnectionSparsity"]) == (0.56, 0.1667)
    assert b["SynapticOperations"] == {"Effective_MACs": 0.0, "Effective_ACs": 25.75, "Dense": 90.0}
    assert r["ActivationSparsity"] == 0.86
    assert r["SynapticOperations"] == {"Effective_MACs": 15.25, "Effective_ACs": 3.5, "Dense": 90.0}


@pytest.mark.parametrize("name, case", PAIRS)
def test_membrane_updates_each_follow_their_rule(runs, name, case):
    """MembraneUpdates is not the same count in the two tools; each is recomputed here from
    snnTorch's own traces (every neuron at the first step, then per later step):
    the harness counts neurons whose membrane changed (a leak changes it without input; a neuron
    reset to zero at two consecutive steps has 0 before and after and is not counted), snc counts
    neurons with non-zero input (synaptic current plus bias)."""
    run = runs[name, case]
    trace, n = run["trace"], run["net"]["spikes"].shape[0]
    changed = sum(t["after"][0].size + np.count_nonzero(t["before"][1:] != t["after"][1:]) for t in trace.values()) / n
    driven = sum(t["after"][0].size + np.count_nonzero(t["inp"][1:]) for t in trace.values()) / n
    assert run["oracle"]["results"]["MembraneUpdates"] == pytest.approx(changed, rel=1e-12)
    assert run["snc"]["MembraneUpdates"] == pytest.approx(driven, rel=1e-12)
