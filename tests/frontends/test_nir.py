"""NIR in (snc.frontends.nir): snnTorch's own NIR export of its networks, read by snc and
simulated, against snnTorch's own run on the same spikes (0 mismatches where the semantics are
carried, the measured count where NIR loses them); a hand-written Euler loop for the
discretisation; the corpus's Sinabs CNN; one-line errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import nir  # a dependency of snc; snnTorch (with nirtorch) is installed for the tests by `make venv`

from snc.backends.sim import simulate
from snc.errors import InvalidModel, UnsupportedOperator
from snc.frontends.nir import from_nir, load_nir

from ..cli.test_cli import run_snc
from ..conftest import corpus_path


class _LeakyMLP(torch.nn.Module):
    def __init__(self, reset: str):
        super().__init__()
        from snntorch import Leaky

        torch.manual_seed(0)
        self.fc1, self.fc2 = torch.nn.Linear(8, 16), torch.nn.Linear(16, 4)
        with torch.no_grad():
            self.fc1.weight.mul_(4)
        self.lif1 = Leaky(beta=torch.full((16,), 0.9), threshold=torch.ones(16), reset_mechanism=reset, init_hidden=True)
        self.lif2 = Leaky(beta=torch.full((4,), 0.8), threshold=torch.ones(4), reset_mechanism=reset, init_hidden=True,
                          output=True)

    def forward(self, x):
        return self.lif2(self.fc2(self.lif1(self.fc1(x))))


def _snntorch_run(reset: str, tmp_path, steps: int = 150, samples: int = 8):
    """snnTorch's NIR export of the MLP, its own spikes per layer (T, N, n), and the input spikes."""
    from snntorch import utils
    from snntorch.export_nir import export_to_nir

    net = _LeakyMLP(reset)
    nir.write(str(tmp_path / f"{reset}.nir"), export_to_nir(net, torch.randn(1, 8), ignore_dims=[0]))
    x = (torch.rand(steps, samples, 8, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    utils.reset(net)
    ref = _run(lambda xt: net.lif1(net.fc1(xt)), lambda h: net.lif2(net.fc2(h)), x, ("lif1", "lif2"))
    return tmp_path / f"{reset}.nir", x.numpy(), ref


def _run(hidden_of, out_of, x: torch.Tensor, names: tuple[str, str]) -> dict[str, np.ndarray]:
    """snnTorch's own run, step by step: {hidden name: (T, N, ...) spikes, output name: ...}."""
    hidden, out = [], []
    with torch.no_grad():
        for t in range(x.shape[0]):
            h = hidden_of(x[t])
            o = out_of(h)
            hidden.append(h.clone())
            out.append(o[0] if isinstance(o, tuple) else o)
    return {names[0]: torch.stack(hidden).numpy() > 0, names[1]: torch.stack(out).numpy() > 0}


def _mismatches(graph, x, ref) -> dict[str, int]:
    steps, samples = x.shape[:2]
    r = simulate(graph, np.moveaxis(x, 0, 1).astype(bool), timesteps=steps, rasters=range(samples))
    return {p: int((np.stack([r.populations[p].rasters[i] for i in range(samples)], axis=1) != ref[p]).sum())
            for p in ref}


def test_snntorch_reset_to_zero_mlp_gives_identical_spikes(tmp_path):
    path, x, ref = _snntorch_run("zero", tmp_path)
    assert ref["lif2"].sum() > 100 and ref["lif1"].sum() > 1000  # busy enough to disagree if anything differed
    graph = load_nir(path)
    assert _mismatches(graph, x, ref) == {"lif1": 0, "lif2": 0}
    assert graph.nodes["lif1"].decay_voltage == pytest.approx(0.1) and "input gain 1 (taken as 1)" in graph.meta["notes"][0]


def test_snntorch_subtractive_reset_needs_the_option(tmp_path):
    path, x, ref = _snntorch_run("subtract", tmp_path)
    default = _mismatches(load_nir(path), x, ref)  # NIR writes v_reset = 0: the subtraction is lost
    assert default["lif2"] > 0  # measured and documented in docs/nir.md
    exact = _mismatches(load_nir(path, reset="subtract", reset_timing="next_step"), x, ref)
    assert exact == {"lif1": 0, "lif2": 0}


def test_euler_discretisation_by_hand(tmp_path):
    """An Affine with a bias into a LIF whose r and v_leak differ per neuron (input gains 1.5, 1
    and 0.25), read at dt, against forward Euler written out here."""
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(3, 5)), rng.normal(size=3) * 0.1
    tau, r, v_leak, vth, dt = np.full(3, 2e-3), np.array([30.0, 20.0, 5.0]), np.array([0.2, 0.0, -0.1]), 1.0, 1e-4
    g = nir.NIRGraph.from_list(nir.Input(np.array([5])), nir.Affine(w, b),
                               nir.LIF(tau=tau, r=r, v_leak=v_leak, v_threshold=np.full(3, vth), v_reset=np.zeros(3)),
                               nir.Output(np.array([3])))
    nir.write(str(tmp_path / "h.nir"), g)
    graph = load_nir(tmp_path / "h.nir", dt=dt)
    (lif,) = [n for n in graph.nodes if graph.nodes[n].kind == "LIF"]
    steps, samples = 80, 3
    x = rng.random((samples, steps, 5)) < 0.6
    res = simulate(graph, x, timesteps=steps, rasters=range(samples))
    total = 0
    for i in range(samples):
        v, spikes = np.zeros(3), []
        for t in range(steps):
            v = v + dt / tau * (v_leak - v + r * (w @ x[i, t] + b))
            s = v > vth
            v = np.where(s, 0.0, v)
            spikes.append(s)
        want = np.array(spikes)
        total += int(want.sum())
        np.testing.assert_array_equal(res.populations[lif].rasters[i], want)
    assert total > 20


def test_sinabs_cnn_from_the_corpus_imports_simulates_and_inspects():
    path = corpus_path("nir", "cnn_sinabs.nir")
    graph = load_nir(path, dt=1.0)  # Sinabs writes r = 1 for v <- v + I: a step of 1
    shapes = graph.validate()
    assert shapes["output"] == (10,) and shapes["8"] == (128,)
    assert not any(graph.nodes[n].kind == "Scale" for n in graph.nodes)  # gain dt r = 1
    x = np.random.default_rng(0).random((2, 20, 2, 34, 34)) < 0.2
    r = simulate(graph, x, timesteps=20)
    assert r.predictions.shape == (2,)
    assert sum(p.spikes.sum() for p in r.populations.values() if p.spiking) > 0
    out = run_snc(["inspect", path, "--dt", "1"])
    assert out.returncode == 0 and "SumPool2d" in out.stdout and "spike_count" in out.stdout
    assert "note: 1: NIR IF at dt = 1 s -> snc IF" in out.stdout
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        art = Path(d) / "s.snir"
        done = run_snc(["compile", path, "-o", art, "--dt", "1"])  # already spiking: saved as read
        assert done.returncode == 0, done.stderr
        from snc.ir import load

        saved = load(art)
        assert list(saved.nodes) == list(graph.nodes)
        for name, node in graph.nodes.items():
            for field, value in node.array_fields():
                np.testing.assert_array_equal(getattr(saved.nodes[name], field), value)


def test_bad_nir_files_are_one_line(tmp_path):
    bad = tmp_path / "trunc.nir"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(InvalidModel, match="not a readable NIR file"):
        load_nir(bad)
    g = nir.NIRGraph.from_list(nir.Input(np.array([2, 8])),
                               nir.Conv1d(input_shape=8, weight=np.ones((2, 2, 3), np.float32), stride=1, padding=1,
                                          dilation=1, groups=1, bias=np.zeros(2, np.float32)),
                               nir.Output(np.array([2, 8])))
    nir.write(str(tmp_path / "conv1d.nir"), g)
    with pytest.raises(UnsupportedOperator, match="NIR Conv1d is not supported") as err:
        load_nir(tmp_path / "conv1d.nir")
    assert err.value.node == "conv1d"
    r = run_snc(["simulate", bad, "--data", tmp_path / "x.npy"])
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "trunc.nir" in r.stderr


def test_cli_records_the_spikes_snntorch_produced(tmp_path):
    """snc simulate X.nir --input-spikes --record: other simulators' layout in and out."""
    path, x, ref = _snntorch_run("subtract", tmp_path, steps=100, samples=4)
    np.save(tmp_path / "spikes.npy", x.astype(bool))  # (steps, samples, 8), as snnTorch takes it
    r = run_snc(["simulate", path, "--data", tmp_path / "spikes.npy", "--input-spikes", "--timesteps", "100",
                 "--reset", "subtract", "--reset-timing", "next_step", "--record", tmp_path / "rec.npz"])
    assert r.returncode == 0, r.stderr
    rec = np.load(tmp_path / "rec.npz")
    assert rec["lif1"].shape == (100, 4, 16) and rec["lif2"].shape == (100, 4, 4)
    for p in ("lif1", "lif2"):
        np.testing.assert_array_equal(rec[p], ref[p])
    np.save(tmp_path / "snc_layout.npy", np.swapaxes(x, 0, 1).astype(bool))  # (samples, steps, 8)
    est = run_snc(["estimate", path, "--data", tmp_path / "snc_layout.npy", "--hw", "loihi2", "--timesteps", "100", "--json"])
    assert est.returncode == 0, est.stderr
    import json

    doc = json.loads(est.stdout)
    assert doc["totals"]["energy_j"] > 0 and {row["name"] for row in doc["layers"]} >= {"lif1", "lif2"}


class _SynapticMLP(torch.nn.Module):
    """snnTorch's current-based neurons (exported as NIR CubaLIF); Linear layers without biases
    (a bias would enter the synaptic current, which snc's neurons do not take: refused)."""

    def __init__(self, reset: str):
        super().__init__()
        from snntorch import Synaptic

        torch.manual_seed(0)
        self.fc1, self.fc2 = torch.nn.Linear(8, 16, bias=False), torch.nn.Linear(16, 4, bias=False)
        with torch.no_grad():
            self.fc1.weight.mul_(3)
        self.lif1 = Synaptic(alpha=torch.full((16,), 0.7), beta=torch.full((16,), 0.9), threshold=torch.ones(16),
                             reset_mechanism=reset, init_hidden=True)
        self.lif2 = Synaptic(alpha=torch.full((4,), 0.6), beta=torch.full((4,), 0.8), threshold=torch.ones(4),
                             reset_mechanism=reset, init_hidden=True, output=True)

    def forward(self, x):
        return self.lif2(self.fc2(self.lif1(self.fc1(x))))


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_snntorch_synaptic_mlp_with_next_step_reset(tmp_path, reset):
    from snntorch import utils
    from snntorch.export_nir import export_to_nir

    net = _SynapticMLP(reset)
    g = export_to_nir(net, torch.randn(1, 8), ignore_dims=[0])
    assert type(g.nodes["lif1"]).__name__ == "CubaLIF"
    nir.write(str(tmp_path / "s.nir"), g)
    steps, samples = 150, 8
    x = (torch.rand(steps, samples, 8, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    utils.reset(net)
    ref = _run(lambda xt: net.lif1(net.fc1(xt)), lambda h: net.lif2(net.fc2(h)), x, ("lif1", "lif2"))
    assert ref["lif1"].sum() > 1000 and ref["lif2"].sum() > 300
    xs = x.numpy()
    assert _mismatches(load_nir(tmp_path / "s.nir"), xs, ref)["lif2"] > 0  # NIR's default: documented in docs/nir.md
    exact = load_nir(tmp_path / "s.nir", reset=reset, reset_timing="next_step")
    assert _mismatches(exact, xs, ref) == {"lif1": 0, "lif2": 0}


def _edit(src, dst, fn):
    import shutil

    import h5py

    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        fn(f)
    return dst


def test_malformed_nir_files_give_one_clear_error_each(tmp_path):
    g = nir.NIRGraph.from_list(nir.Input(np.array([3])), nir.Linear(np.ones((2, 3), np.float32)),
                               nir.LIF(tau=np.full(2, 1e-3), r=np.full(2, 10.0), v_leak=np.zeros(2), v_threshold=np.ones(2),
                                       v_reset=np.zeros(2)),
                               nir.Output(np.array([2])))
    good = tmp_path / "good.nir"
    nir.write(str(good), g)
    assert load_nir(good).nodes["lif"].decay_voltage == pytest.approx(0.1)

    def missing(f):
        del f["node/nodes/lif/tau"]

    def wrong_type(f):
        del f["node/nodes/linear/weight"]
        f["node/nodes/linear/weight"] = np.array([b"not", b"numbers"])

    def dangling(f):
        del f["node/edges"]
        f["node/edges"] = np.array([[b"input", b"linear"], [b"linear", b"ghost"]])

    cases = {"missing": (missing, "not a readable NIR file|lif"), "wrong_type": (wrong_type, "linear|not a readable"),
             "dangling": (dangling, "ghost|not a readable")}
    for name, (fn, pattern) in cases.items():
        bad = _edit(good, tmp_path / f"{name}.nir", fn)
        with pytest.raises((InvalidModel, UnsupportedOperator), match=pattern):
            load_nir(bad)
        r = run_snc(["inspect", bad])
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and f"{name}.nir" in r.stderr, r.stderr
    cyc = nir.NIRGraph(nodes={"input": nir.Input(np.array([2])), "a": nir.Linear(np.ones((2, 2), np.float32)),
                              "lif": nir.LIF(tau=np.full(2, 1e-3), r=np.full(2, 10.0), v_leak=np.zeros(2),
                                             v_threshold=np.ones(2), v_reset=np.zeros(2)),
                              "w": nir.Linear(np.ones((2, 2), np.float32)), "output": nir.Output(np.array([2]))},
                       edges=[("input", "a"), ("a", "lif"), ("lif", "w"), ("w", "lif"), ("lif", "output")])
    nir.write(str(tmp_path / "cycle.nir"), cyc)
    assert load_nir(tmp_path / "cycle.nir").is_recurrent  # a recurrent edge: a one-step Delay
    orphan = nir.NIRGraph(nodes={"input": nir.Input(np.array([2])), "a": nir.Linear(np.ones((2, 2), np.float32)),
                                 "output": nir.Output(np.array([2])), "p": nir.Linear(np.ones((2, 2), np.float32)),
                                 "q": nir.Linear(np.ones((2, 2), np.float32))},
                          edges=[("input", "a"), ("a", "output"), ("p", "q"), ("q", "p")], type_check=False)
    with pytest.raises(UnsupportedOperator, match="no input reaches"):
        from_nir(orphan)


def test_snntorch_recurrent_leaky_reads_its_cycle_with_a_one_step_delay(tmp_path):
    """RLeaky exports a cycle lif -> w_rec -> lif (with the recurrent Linear's bias): snc puts a
    one-step Delay on the edge closing it; snnTorch's RLeaky zeroes a spiking neuron during the
    next step (next_step timing)."""
    from snntorch import Leaky, RLeaky, utils
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(8, 16), torch.nn.Linear(16, 4)
            with torch.no_grad():
                self.fc2.weight.mul_(4)
            self.r = RLeaky(beta=torch.full((16,), 0.9), linear_features=16, threshold=torch.ones(16),
                            reset_mechanism="zero", init_hidden=True)
            self.l2 = Leaky(beta=torch.full((4,), 0.8), threshold=torch.ones(4), reset_mechanism="zero",
                            init_hidden=True, output=True)

    net = Net()
    net.forward = lambda x: net.l2(net.fc2(net.r(net.fc1(x))))
    g = export_to_nir(net, torch.randn(1, 8), ignore_dims=[0])
    assert ("r.lif", "r.w_rec") in g.edges and ("r.w_rec", "r.lif") in g.edges
    nir.write(str(tmp_path / "r.nir"), g)
    steps, samples = 120, 6
    x = (torch.rand(steps, samples, 8, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    utils.reset(net)
    ref = _run(lambda xt: net.r(net.fc1(xt)), lambda h: net.l2(net.fc2(h)), x, ("r.lif", "l2"))
    assert ref["r.lif"].sum() > 500 and ref["l2"].sum() > 50
    graph = load_nir(tmp_path / "r.nir", reset="zero", reset_timing={"r.lif": "next_step"})  # l2 is a Leaky
    assert graph.is_recurrent and graph.nodes["r.w_rec.delay"].steps == 1
    assert _mismatches(graph, x.numpy(), ref) == {"r.lif": 0, "l2": 0}


def test_scalar_neuron_parameters_broadcast(tmp_path):
    """Norse and snnTorch's scalar defaults: parameters of shape () take the shape of their input."""
    g = nir.NIRGraph(nodes={"input": nir.Input(np.array([3])), "w": nir.Linear(np.eye(3, dtype=np.float32) * 2),
                            "lif": nir.LIF(tau=np.array(1e-3), r=np.array(10.0), v_leak=np.array(0.0),
                                           v_threshold=np.array(1.0), v_reset=np.array(0.0)),
                            "output": nir.Output(np.array([3]))},
                     edges=[("input", "w"), ("w", "lif"), ("lif", "output")], type_check=False)
    graph = from_nir(g)
    assert graph.nodes["lif"].shape == (3,) and graph.nodes["output"].shape == (3,)
    r = simulate(graph, np.ones((1, 4, 3), bool), timesteps=4, rasters=[0])
    # v: 2, then 0.9 * 0 + 2 after each reset: every step spikes (v > 1)
    assert r.populations["lif"].rasters[0].all()


def test_snntorch_conv_net_gives_identical_spikes(tmp_path):
    """Conv2d (bias per channel) -> Leaky -> AvgPool2d -> Flatten -> Linear -> Leaky, as snnTorch
    exports it (torch tensors in the Conv2d fields, 0-d pooling sizes)."""
    from snntorch import Leaky, utils
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = torch.nn.Conv2d(2, 4, 3, padding=1)
            self.l1 = Leaky(beta=torch.full((4, 8, 8), 0.9), threshold=torch.ones(4, 8, 8), reset_mechanism="zero",
                            init_hidden=True)
            self.p, self.f, self.fc = torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(64, 5)
            self.l2 = Leaky(beta=torch.full((5,), 0.8), threshold=torch.ones(5), reset_mechanism="zero", init_hidden=True,
                            output=True)
            with torch.no_grad():
                self.c1.weight.mul_(3)
                self.fc.weight.mul_(3)

        def forward(self, x):
            return self.l2(self.fc(self.f(self.p(self.l1(self.c1(x))))))

    net = Net()
    nir.write(str(tmp_path / "c.nir"), export_to_nir(net, torch.randn(1, 2, 8, 8), ignore_dims=[0]))
    steps, samples = 60, 4
    x = (torch.rand(steps, samples, 2, 8, 8, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    utils.reset(net)
    ref = _run(lambda xt: net.l1(net.c1(xt)), lambda h: net.l2(net.fc(net.f(net.p(h)))), x, ("l1", "l2"))
    ref["l1"] = ref["l1"].reshape(steps, samples, -1)
    assert ref["l1"].sum() > 1000 and ref["l2"].sum() > 30
    graph = load_nir(tmp_path / "c.nir")
    assert [graph.nodes[n].kind for n in graph.topological_order()][1:6] == ["Conv2d", "LIF", "AvgPool2d", "Flatten", "Dense"]
    assert _mismatches(graph, x.numpy(), ref) == {"l1": 0, "l2": 0}


def test_delay_threshold_and_cubali_by_hand():
    """Linear -> Delay (2 steps at dt) -> Threshold -> Linear -> CubaLI readout, against the
    Euler loop written out here."""
    rng = np.random.default_rng(5)
    w1, w2, dt = rng.normal(size=(4, 3)), rng.normal(size=(2, 4)), 1e-3
    tau_syn, tau_mem, r, w_in = np.full(2, 4e-3), np.full(2, 5e-3), np.full(2, 5.0), np.full(2, 4.0)
    g = nir.NIRGraph.from_list(nir.Input(np.array([3])), nir.Linear(w1), nir.Delay(np.full(4, 2e-3)),
                               nir.Threshold(np.full(4, 0.3)), nir.Linear(w2),
                               nir.CubaLI(tau_syn=tau_syn, tau_mem=tau_mem, r=r, v_leak=np.zeros(2), w_in=w_in),
                               nir.Output(np.array([2])))
    graph = from_nir(g, dt=dt)
    assert [graph.nodes[n].kind for n in graph.topological_order()].count("Delay") == 1
    steps = 30
    x = rng.random((2, steps, 3)) < 0.5
    res = simulate(graph, x, timesteps=steps)
    (readout,) = graph.outputs
    for i in range(2):
        hist, cur, v = [], np.zeros(2), np.zeros(2)
        for t in range(steps):
            hist.append(w1 @ x[i, t])
            delayed = hist[t - 2] if t >= 2 else np.zeros(4)
            z = (delayed > 0.3).astype(float)
            cur = cur + dt / tau_syn * (-cur + w_in * (w2 @ z))
            v = v + dt / tau_mem * (-v + r * cur)
        np.testing.assert_allclose(res.outputs[readout][i], v, rtol=1e-4, atol=1e-5)  # a leaky readout gives v[T]
