"""NIR out (snc.backends.nir): a compiled graph written as NIR passes NIR's own type checks
(``nir.read(type_check=True)``), reads back into the identical graph (the artifact bytes) with
identical spikes, and, read as plain NIR by the forward-Euler reader (the snc metadata removed),
still gives the same spikes when the reset NIR loses is named."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import nir

from snc.backends.nir import export_nir, to_nir
from snc.backends.sim import simulate
from snc.errors import UnsupportedOperator
from snc.frontends.nir import from_nir, load_nir
from snc.frontends.torch import from_torch
from snc.ir import LIF, Dense, Graph, Input, Readout
from snc.ir.artifact import to_bytes
from snc.passes import CONVERSION
from snc.pipeline import compile as compile_graph

from ..cli.test_cli import run_snc


def _converted(quantize: bool):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10)).eval()
    x = np.random.default_rng(0).random((64, 16)).astype(np.float32)
    passes = CONVERSION + (("quantize",) if quantize else ())
    return compile_graph(from_torch(model, x[:1]), x, passes=passes), x


def _lif_net():
    rng = np.random.default_rng(3)
    g = Graph("lif")
    g.add("x", Input(shape=(6,), encoding="spikes"))
    g.add("d1", Dense(weight=rng.normal(size=(8, 6)).astype(np.float32)), ["x"])
    g.add("h", LIF(shape=(8,), threshold=0.8, reset="zero", decay_voltage=0.25, decay_current=0.5,
                   bias=(rng.normal(size=8) * 0.05).astype(np.float32)), ["d1"])
    g.add("d2", Dense(weight=rng.normal(size=(3, 8)).astype(np.float32)), ["h"])
    g.add("o", LIF(shape=(3,), threshold=1.0, reset="zero", decay_voltage=0.1), ["d2"])
    g.add("out", Readout(shape=(3,), mode="spike_count"), ["o"])
    g.outputs = ["out"]
    g.validate()
    return g, rng.random((4, 60, 6)) < 0.5


@pytest.mark.parametrize("quantize", [False, True])
def test_round_trip_is_the_identical_graph_with_identical_spikes(tmp_path, quantize):
    g, x = _converted(quantize)
    export_nir(g, tmp_path / "m.nir")
    nir.read(str(tmp_path / "m.nir"), type_check=True)  # NIR's own checks
    back = load_nir(tmp_path / "m.nir")
    assert to_bytes(back) == to_bytes(g)  # nodes, parameters, fixed point and metadata
    arith = "fixed" if quantize else "float32"
    a = simulate(g, x[:16], timesteps=32, arithmetic=arith)
    b = simulate(back, x[:16], timesteps=32, arithmetic=arith)
    np.testing.assert_array_equal(a.outputs["readout"], b.outputs["readout"])
    np.testing.assert_array_equal(a.predictions, b.predictions)


def test_plain_nir_reading_gives_the_same_spikes(tmp_path):
    """Without snc's metadata, the NIR nodes alone reproduce the network (Euler at the same dt),
    once the subtractive reset NIR cannot carry is named."""
    g, x = _converted(False)
    ng, report = to_nir(g, dt=1e-3)
    assert any("subtractive reset" in line for line in report)
    ng.metadata = {}
    plain = from_nir(ng, dt=1e-3, reset="subtract", encoding="direct")
    a = simulate(g, x[:16], timesteps=32, rasters=range(4))
    b = simulate(plain, x[:16], timesteps=32, rasters=range(4))
    for i in range(4):
        np.testing.assert_array_equal(a.populations["1"].rasters[i], b.populations["1"].rasters[i])
    np.testing.assert_allclose(b.outputs["readout"], a.outputs["readout"], rtol=1e-5, atol=1e-6)
    wrong = simulate(from_nir(ng, dt=1e-3, encoding="direct"), x[:16], timesteps=32)  # NIR's reset to 0
    assert not np.array_equal(wrong.outputs["readout"], a.outputs["readout"])


def test_lif_and_current_decay_through_plain_nir(tmp_path):
    g, x = _lif_net()
    ng, _ = to_nir(g, dt=1e-4)
    assert type(ng.nodes["h"]).__name__ == "CubaLIF" and type(ng.nodes["o"]).__name__ == "LIF"
    ng.metadata = {}
    nir.write(str(tmp_path / "l.nir"), ng)
    plain = load_nir(tmp_path / "l.nir")
    a = simulate(g, x, timesteps=60, rasters=range(4))
    b = simulate(plain, x, timesteps=60, rasters=range(4))
    assert sum(a.populations["h"].rasters[i].sum() for i in range(4)) > 50
    for p in ("h", "o"):
        for i in range(4):
            np.testing.assert_array_equal(a.populations[p].rasters[i], b.populations[p].rasters[i])


def test_cli_export_and_refusals(tmp_path):
    g, _ = _converted(True)
    from snc.ir import save

    save(g, tmp_path / "m.snir")
    r = run_snc(["export", tmp_path / "m.snir", "--to", "nir", "-o", tmp_path / "m.nir", "--dt", "0.001"])
    assert r.returncode == 0, r.stderr
    assert float(nir.read(str(tmp_path / "m.nir")).metadata["dt"]) == 0.001
    r = run_snc(["export", tmp_path / "m.snir", "--to", "nir", "-o", tmp_path / "folder"])
    assert r.returncode == 2 and "ending in .nir" in r.stderr
    h = Graph("delay")
    from snc.ir import Delay

    h.add("x", Input(shape=(2,), encoding="spikes"))
    h.add("d", Dense(weight=np.ones((2, 2), np.float32)), ["x"])
    h.add("dl", Delay(steps=2), ["d"])
    h.add("n", LIF(shape=(2,), threshold=1.0), ["dl"])
    h.add("out", Readout(shape=(2,), mode="spike_count"), ["n"])
    h.outputs = ["out"]
    with pytest.raises(UnsupportedOperator, match="Delay has no NIR form") as err:
        to_nir(h)
    assert err.value.node == "dl"
    assert not list(tmp_path.glob(".*.nir*"))  # no temporary file left behind
