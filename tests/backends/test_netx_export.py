"""netx HDF5 out (snc.backends.netx): a quantised chain written as netx, loaded by lava-dl's own
``netx.hdf5.Network`` in the Lava environment and run there in fixed point, spikes identically to
snc's fixed-point simulator (Lava's timing: one step per synapse); read back by snc's netx reader
it is the same network; what netx cannot express is refused by name."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from snc.backends.netx import export_netx, netx_layers, run_in_lava
from snc.backends.sim import simulate
from snc.errors import UnsupportedOperator
from snc.frontends.netx import load_netx
from snc.ir import IF, LIF, Dense, Graph, Input, Readout
from snc.pipeline import compile as compile_graph

from ..cli.test_cli import run_snc


def _chain(reset: str = "zero", bias: bool = False):
    rng = np.random.default_rng(3)
    g = Graph("chain")
    g.add("x", Input(shape=(10,), encoding="spikes"))
    g.add("d1", Dense(weight=rng.normal(size=(12, 10)).astype(np.float32)), ["x"])
    b = (rng.normal(size=12) * 0.1).astype(np.float32) if bias else None
    if reset == "subtract":  # (Loihi has no leaky neuron that subtracts: IF)
        g.add("h", IF(shape=(12,), threshold=0.8, reset=reset, bias=b), ["d1"])
    else:
        g.add("h", LIF(shape=(12,), threshold=0.8, reset=reset, decay_voltage=0.25, decay_current=0.5, bias=b), ["d1"])
    g.add("d2", Dense(weight=rng.normal(size=(4, 12)).astype(np.float32)), ["h"])
    g.add("o", LIF(shape=(4,), threshold=1.0, reset="zero", decay_voltage=0.1), ["d2"])
    g.add("out", Readout(shape=(4,), mode="spike_count"), ["o"])
    g.outputs = ["out"]
    return compile_graph(g, None, passes=["quantize"]), rng.random((3, 40, 10)) < 0.4


def test_netx_in_lava_spikes_like_snc(tmp_path):
    q, x = _chain()
    export_netx(q, tmp_path / "c.net")
    lava = run_in_lava(tmp_path / "c.net", x, 40)
    ours = simulate(q, x, timesteps=40, arithmetic="fixed", timing="delay", rasters=range(3))
    total = 0
    for j, name in enumerate(("h", "o")):
        mine = np.stack([ours.populations[name].rasters[i] for i in range(3)])
        np.testing.assert_array_equal(lava[f"layer{j}"], mine)
        total += int(mine.sum())
    assert total > 200  # busy: a difference in decay, threshold or timing would show


def test_netx_round_trip_through_snc(tmp_path):
    q, x = _chain()
    export_netx(q, tmp_path / "c.net")
    back = load_netx(tmp_path / "c.net", encoding="spikes")
    a = simulate(q, x, timesteps=40, arithmetic="fixed", rasters=range(3))
    b = simulate(back, x, timesteps=40, arithmetic="fixed", rasters=range(3))
    for mine, theirs in (("h", "layer0"), ("o", "layer1")):
        for i in range(3):
            np.testing.assert_array_equal(a.populations[mine].rasters[i], b.populations[theirs].rasters[i])
    with h5py.File(tmp_path / "c.net") as f:
        assert int(f["layer/0/neuron/iDecay"][()]) == q.nodes["h"].fixed.du + 1


def test_what_netx_cannot_express_is_refused(tmp_path):
    q, _ = _chain(reset="subtract")
    with pytest.raises(UnsupportedOperator, match="reset to 0") as err:
        netx_layers(q)
    assert err.value.node == "h"
    q, _ = _chain(bias=True)
    with pytest.raises(UnsupportedOperator, match="whole number of weight units"):
        netx_layers(q)
    from snc.ir import save

    save(q, tmp_path / "b.snir")
    r = run_snc(["export", tmp_path / "b.snir", "--to", "netx", "-o", tmp_path / "b.net"])
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and not (tmp_path / "b.net").exists()
    ok, _ = _chain()
    save(ok, tmp_path / "ok.snir")
    assert run_snc(["export", tmp_path / "ok.snir", "--to", "netx", "-o", tmp_path / "ok.net"]).returncode == 0
    assert load_netx(tmp_path / "ok.net", encoding="spikes").nodes["layer1"].fixed.vth == ok.nodes["o"].fixed.vth
