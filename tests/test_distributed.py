"""Sharded simulation and estimation on Dask (snc.distributed, issue 14 part 1): a real local
cluster of two worker processes on loopback gives exactly the single-process numbers (float32
and fixed point: per-layer spikes, synaptic operations, energy, latency, accuracy, predictions),
the compiled graph arrives once per worker, and without Dask the request fails in one line."""
from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

import snc
import snc.ir as ir
from snc import distributed as D
from snc import estimate as single
from snc.backends.sim import simulate
from snc.cli import main
from snc.cli_common import _jsonable
from snc.errors import InvalidOption
from snc.ir import artifact

T = 16
N = 45  # samples: 5 shards of 9 over 2 workers


def _small_cnn() -> nn.Module:
    """Conv 1->4 k3 on 8x8 -> ReLU -> max pool 2 -> Dense 36 -> 16 -> ReLU -> Dense 16 -> 4."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 16), nn.ReLU(),
                         nn.Linear(16, 4)).eval()


@pytest.fixture(scope="module")
def net():
    """A compiled, int8-quantised network (so it runs in fixed point too), samples and labels."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    calib = rng.random((60, 1, 8, 8), dtype=np.float32)
    graph = snc.compile(snc.from_torch(_small_cnn(), torch.zeros(1, 1, 8, 8)), calib=calib, timesteps=T)
    assert graph.meta.get("quantized")
    x = rng.random((N, 1, 8, 8), dtype=np.float32)
    y = rng.integers(0, 4, N)
    return graph, x, y


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed", reason="Dask distributed is the optional extra snc[distributed]")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0", silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def _doc(est) -> dict:
    return json.loads(json.dumps(_jsonable(est.doc)))


def _assert_same_estimate(a, b) -> None:
    """Every number the two estimates report, and the run's per-sample arrays, bit for bit."""
    assert a.result.samples == b.result.samples == N
    np.testing.assert_array_equal(a.result.predictions, b.result.predictions)
    for name, p in a.result.populations.items():
        q = b.result.populations[name]
        for field in ("spikes", "synops", "active_updates", "neuron_spikes"):
            np.testing.assert_array_equal(getattr(p, field), getattr(q, field), err_msg=f"{name}.{field}")
    for name, c in a.result.connections.items():
        np.testing.assert_array_equal(c.ops, b.result.connections[name].ops, err_msg=name)
    for hw, ta in ((h, v["totals"]) for h, v in a.doc["per_hw"].items()):
        tb = b.doc["per_hw"][hw]["totals"]
        for key in ("energy_j", "latency_s", "synops", "chip_synops", "accuracy", "dynamic_energy_j", "static_energy_j"):
            assert ta[key] == tb[key], (hw, key)
        for la, lb in zip(a.doc["per_hw"][hw]["layers"], b.doc["per_hw"][hw]["layers"]):
            for key in ("name", "spikes_per_sample", "synops", "chip_synops", "energy_j", "latency_s"):
                assert la[key] == lb[key], (hw, la["name"], key)
    assert _doc(a) == _doc(b)  # and everything else in the document


def test_sharded_float_estimate_equals_the_single_process_estimate(net, client):
    graph, x, y = net
    one = single.estimate(graph, x, labels=y, hw=["loihi", "loihi2"], timesteps=T)
    sharded = D.estimate(graph, x, labels=y, hw=["loihi", "loihi2"], timesteps=T, client=client, shards=5)
    assert sum(one.doc["per_hw"]["loihi"]["totals"]["energy_components_j"].values()) > 0
    assert one.result.populations and sum(p.spikes.sum() for p in one.result.populations.values()) > 0
    _assert_same_estimate(one, sharded)


def test_sharded_fixed_point_estimate_and_simulation_merge_bit_exactly(net, client):
    graph, x, y = net
    setup = single.prepare(graph, x, hw=["loihi"], timesteps=T)
    result = simulate(graph, x, labels=y, timesteps=T, arithmetic="fixed", rasters=[0], recorders=setup.recorders)
    one = single.summarize(graph, setup, result, labels=y)
    sharded = D.estimate(graph, x, labels=y, hw=["loihi"], timesteps=T, arithmetic="fixed", client=client, shards=5)
    assert sharded.result.arithmetic == "fixed"
    _assert_same_estimate(one, sharded)
    # The simulation alone, with spike recording and rasters of samples in the third shard.
    from snc.backends.sim.recorders import SpikeRecorder

    a = simulate(graph, x, labels=y, timesteps=T, arithmetic="fixed", rasters=[20, 21], recorders=[SpikeRecorder()])
    b = D.simulate_sharded(graph, x, labels=y, timesteps=T, arithmetic="fixed", rasters=[20, 21],
                           recorders=[SpikeRecorder()], client=client, shards=5)
    for k in a.outputs:
        np.testing.assert_array_equal(a.outputs[k], b.outputs[k])
    assert a.overflow == b.overflow
    assert a.accuracy == b.accuracy
    for name, p in a.populations.items():
        assert sorted(p.rasters) == sorted(b.populations[name].rasters)
        for i in p.rasters:
            np.testing.assert_array_equal(p.rasters[i], b.populations[name].rasters[i])
    for name, s in a.extra["spikes"].items():
        np.testing.assert_array_equal(s, b.extra["spikes"][name], err_msg=name)
    doc_a, doc_b = a.to_json(), b.to_json()
    doc_a.pop("wall_seconds"), doc_b.pop("wall_seconds")
    assert doc_a == doc_b


def test_the_graph_arrives_once_per_worker_however_many_shards(net, client):
    graph, x, y = net
    before = client.run(D.arrivals)
    D.simulate_sharded(graph, x, labels=y, timesteps=T, client=client, shards=6)
    after = client.run(D.arrivals)
    new = {w: {k: v - before[w].get(k, 0) for k, v in counts.items() if v != before[w].get(k, 0)} for w, counts in after.items()}
    assert len(new) == 2
    assert all(list(n.values()) == [1] for n in new.values()), new  # 6 shards, one arrival on each worker
    assert len({k for n in new.values() for k in n}) == 1  # the same payload on both
    # Control: the counter does see every transfer. A payload passed to each task directly (not
    # scattered) arrives once per task: three tasks -> three arrivals over the workers.
    from snc.ir.artifact import to_bytes

    payload = D.Payload(to_bytes(graph) + b"", [])
    payload.digest = "control"
    options = {"timesteps": T, "batch_size": None, "arithmetic": "float32", "timing": "sync", "seed": 0, "rasters": []}
    futures = [client.submit(D._run_shard, payload, x[i:i + 1], None, i, options, pure=False) for i in range(3)]
    client.gather(futures)
    control = client.run(D.arrivals)
    assert sum(c.get("control", 0) for c in control.values()) == 3


def test_rate_encoded_inputs_are_refused_in_shards(client):
    g = ir.Graph()
    g.add("x", ir.Input(shape=(4,), encoding="rate"))
    g.add("d", ir.Dense(weight=np.eye(3, 4, dtype=np.float32)), ["x"])
    g.add("out", ir.Readout(shape=(3,)), ["d"])
    g.outputs = ["out"]
    x = np.full((4, 4), 0.5, dtype=np.float32)
    with pytest.raises(InvalidOption, match="rate-encoded"):
        D.simulate_sharded(g, x, timesteps=4, client=client, shards=2)


def test_cli_estimate_with_workers_and_simulate_with_cluster_print_the_single_process_json(net, client, tmp_path):
    graph, x, y = net
    artifact.save(graph, tmp_path / "n.snir")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    base = [str(tmp_path / "n.snir"), "--data", str(tmp_path / "x.npy"), "--labels", str(tmp_path / "y.npy"), "--json"]
    runner = CliRunner()
    out = {}
    for mode, extra in (("one", []), ("workers", ["--workers", "2"])):
        r = runner.invoke(main, ["estimate", *base, "--hw", "loihi"] + extra)
        assert r.exit_code == 0, r.output
        out[mode] = json.loads(r.stdout)
    assert out["one"] == out["workers"]
    address = client.scheduler.address
    sims = {}
    for mode, extra in (("one", []), ("cluster", ["--cluster", address])):
        r = runner.invoke(main, ["simulate", *base, "--fixed-point"] + extra)
        assert r.exit_code == 0, r.output
        doc = json.loads(r.stdout)
        doc.pop("wall_seconds")
        sims[mode] = doc
    assert sims["one"] == sims["cluster"]
    assert sims["one"]["arithmetic"] == "fixed"


def test_without_dask_the_request_fails_in_one_line(net, monkeypatch, tmp_path):
    graph, x, y = net
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(D.DistributedUnavailable, match=r"pip install snc\[distributed\]") as info:
        D.estimate(graph, x, labels=y, workers=2)
    assert "\n" not in str(info.value)
    with pytest.raises(D.DistributedUnavailable):
        D.simulate_sharded(graph, x, workers=2)
    artifact.save(graph, tmp_path / "n.snir")
    np.save(tmp_path / "x.npy", x)
    for cmd, opt in (("simulate", ["--workers", "2"]), ("estimate", ["--cluster", "tcp://127.0.0.1:8786"])):
        r = CliRunner().invoke(main, [cmd, str(tmp_path / "n.snir"), "--data", str(tmp_path / "x.npy"), *opt])
        assert r.exit_code == 2, r.output
        lines = [l for l in r.output.splitlines() if l.strip()]
        assert len(lines) == 1 and "pip install snc[distributed]" in lines[0], r.output
