"""netx HDF5 in (snc.frontends.netx): a file written here by hand as the format says runs in snc's
fixed-point simulator spike for spike like an independent numpy model of Lava's CUBA LIF
(../shared/reference/LAVA_FIXED_POINT.md); the corpus's trained MNIST MLP imports and classifies
the corpus's MNIST test images; malformed files are one clear error each."""
from __future__ import annotations

import gzip

import h5py
import numpy as np
import pytest

from snc.backends.sim import simulate
from snc.errors import InvalidModel, UnsupportedOperator
from snc.frontends.netx import load_netx

from ..cli.test_cli import run_snc
from ..conftest import corpus_path


def _write(path, layers):
    with h5py.File(path, "w") as f:
        top = f.create_group("layer")
        for i, (w, b, vth, i_decay, v_decay) in enumerate(layers):
            g = top.create_group(str(i))
            g.create_dataset("type", (1,), "S10", [b"dense"])
            g.create_dataset("shape", data=np.array([w.shape[0]]))
            g.create_dataset("weight", data=w.astype(np.float32))
            if b is not None:
                g.create_dataset("bias", data=b.astype(np.float32))
            n = g.create_group("neuron")
            n.create_dataset("type", data=b"CUBA")
            for k, v in (("vThMant", vth), ("iDecay", i_decay), ("vDecay", v_decay), ("refDelay", 1)):
                n.create_dataset(k, data=np.int64(v))


def _trunc0(x):
    return np.sign(x) * (np.abs(x) >> 12)


def _lava_cuba(layers, spikes):
    """Lava's LIF fixed point, layer-synchronous (each layer sees this step's spikes)."""
    n_steps = spikes.shape[0]
    state = [(np.zeros(w.shape[0], np.int64), np.zeros(w.shape[0], np.int64)) for w, *_ in layers]
    out = [[] for _ in layers]
    for t in range(n_steps):
        s = spikes[t].astype(np.int64)
        for i, (w, b, vth, i_decay, v_decay) in enumerate(layers):
            u, v = state[i]
            a = w.astype(np.int64) @ s
            u = _trunc0(u * (4096 - i_decay)) + (a << 6)
            bias = 0 if b is None else b.astype(np.int64) << 6
            v = np.clip(_trunc0(v * (4096 - v_decay)) + u + bias, -(2**23 - 1), 2**23 - 1)
            s = (v > (vth << 6)).astype(np.int64)
            v = np.where(s > 0, 0, v)
            state[i] = (u, v)
            out[i].append(s.astype(bool))
    return [np.array(o) for o in out]


def test_a_hand_written_netx_file_runs_like_lavas_cuba_model(tmp_path):
    rng = np.random.default_rng(0)
    layers = [(rng.integers(-40, 60, (12, 20)), rng.integers(-5, 10, 12), 80, 410, 200),
              (rng.integers(-60, 80, (5, 12)), None, 60, 1024, 0)]
    _write(tmp_path / "n.net", layers)
    g = load_netx(tmp_path / "n.net", encoding="spikes")
    x = rng.random((3, 50, 20)) < 0.3
    res = simulate(g, x, timesteps=50, arithmetic="fixed", rasters=range(3))
    total = 0
    for i in range(3):
        want = _lava_cuba(layers, x[i])
        for k, name in enumerate(("layer0", "layer1")):
            np.testing.assert_array_equal(res.populations[name].rasters[i], want[k])
            total += int(want[k].sum())
    assert total > 100


def _mnist(n):
    def read(name, skip):
        with gzip.open(corpus_path("datasets", "mnist", name)) as f:
            return np.frombuffer(f.read()[skip:], np.uint8)

    x = read("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 784)[:n] / 255.0
    return x.astype(np.float32), read("t10k-labels-idx1-ubyte.gz", 8)[:n].astype(np.int64)


def test_the_corpus_mnist_mlp_classifies_mnist():
    g = load_netx(corpus_path("netx", "netx_tutorial_mnist_mlp.net"))
    assert [g.nodes[n].kind for n in g.topological_order()].count("LIF") == 3
    assert g.nodes["layer0"].fixed.du == 409 and g.nodes["layer0"].fixed.vth == 64
    x, y = _mnist(500)
    r = simulate(g, x, labels=y, timesteps=16, arithmetic="fixed", seed=0)
    assert r.accuracy > 0.9  # 95.04 % on all 10,000 images (docs/netx.md)
    out = run_snc(["inspect", corpus_path("netx", "netx_tutorial_mnist_mlp.net")])
    assert out.returncode == 0 and "layer2" in out.stdout


def test_malformed_netx_files_are_one_line(tmp_path):
    rng = np.random.default_rng(1)
    good = [(rng.integers(-5, 5, (4, 6)), None, 10, 0, 0)]
    (tmp_path / "trunc.net").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 30)
    with pytest.raises(InvalidModel, match="not a readable netx"):
        load_netx(tmp_path / "trunc.net")
    _write(tmp_path / "pool.net", good)
    with h5py.File(tmp_path / "pool.net", "r+") as f:
        g = f["layer"].create_group("1")
        g.create_dataset("type", (1,), "S10", [b"pool"])
    with pytest.raises(UnsupportedOperator, match="'pool'") as err:
        load_netx(tmp_path / "pool.net")
    assert err.value.node == "layer1"
    _write(tmp_path / "noth.net", good)
    with h5py.File(tmp_path / "noth.net", "r+") as f:
        del f["layer/0/neuron/vThMant"]
    with pytest.raises(InvalidModel, match="missing 'vThMant'"):
        load_netx(tmp_path / "noth.net")
    _write(tmp_path / "badw.net", good)
    with h5py.File(tmp_path / "badw.net", "r+") as f:
        del f["layer/0/weight"]
        f["layer/0/weight"] = np.array([b"x"])
    for name in ("trunc", "pool", "noth", "badw"):
        r = run_snc(["inspect", tmp_path / f"{name}.net"])
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and f"{name}.net" in r.stderr, r.stderr
