"""The .snir artifact: a round trip through save/load is exact (arrays bit for bit with their
dtype, floats to the last bit, tuples stay tuples), corrupt or hostile files are refused with an
ArtifactError naming the file (and never unpickled), and a failed save leaves the folder as it
was."""
from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import snc.ir as ir
from snc.backends import analog
from snc.errors import ArtifactError, InvalidGraph, SncError
from snc.ir import artifact
from snc.ir.io import ENCODINGS, READOUT_MODES
from snc.ir.neurons import RESETS

# ---------------------------------------------------------------------------------------------
# Exact comparison, written independently of the artifact code.


def assert_same(a, b, where="value"):
    """a and b are identical: same types, arrays bit for bit with dtype, floats to the bit
    (NaN equals NaN, -0.0 differs from 0.0), dict keys in the same order."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype, f"{where}: dtype {a.dtype} != {b.dtype}"
        assert a.shape == b.shape, f"{where}: shape {a.shape} != {b.shape}"
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), f"{where}: bits differ"
    elif isinstance(a, float):
        if math.isnan(a):
            assert math.isnan(b), f"{where}: {a!r} != {b!r}"
        else:
            assert a == b and math.copysign(1.0, a) == math.copysign(1.0, b), f"{where}: {a!r} != {b!r}"
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), f"{where}: lengths differ"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_graph(g: ir.Graph, h: ir.Graph) -> None:
    assert_same(g.name, h.name, "name")
    assert_same(g.outputs, h.outputs, "outputs")
    assert_same(g.meta, h.meta, "graph.meta")
    assert list(g.nodes) == list(h.nodes)
    for name in g.nodes:
        assert type(g.nodes[name]) is type(h.nodes[name]), name
        assert_same(g.nodes[name], h.nodes[name], f"node {name!r}")
        assert g.inputs_of(name) == h.inputs_of(name), name
    assert g.edges() == h.edges()


def round_trips(g: ir.Graph, folder: Path) -> list[ir.Graph]:
    path = folder / "model.snir"
    assert ir.save(g, path) == path
    return [ir.load(path), artifact.from_bytes(artifact.to_bytes(g)), artifact.from_bytes(path.read_bytes(), file="x")]


# ---------------------------------------------------------------------------------------------
# A hand-built graph using every node kind.

AWKWARD_FLOATS = [0.1, 1e-300, 5e-324, -0.0, 1.7976931348623157e308, float("nan"), float("inf"), float("-inf"), 1 / 3]


def every_kind_graph() -> ir.Graph:
    rng = np.random.default_rng(0)

    def w(*shape):
        return rng.normal(size=shape).astype(np.float32)

    g = ir.Graph("every kind ✓")
    g.meta = {
        "floats": list(AWKWARD_FLOATS),
        "tuple": (1, (2.5, "three"), [4, (5,)]),
        "nested": {"a": {"b": {"c": [None, True, False, 0, -1, 2**70]}}},
        "arrays": [
            np.arange(6, dtype=np.int8).reshape(2, 3),
            np.array([0.1, np.nan, -0.0], dtype=np.float64),
            np.array(3.5, dtype=np.float16),
            np.zeros((0, 3), dtype=np.uint16),
            np.array([True, False]),
            np.array([1 + 2j], dtype=np.complex64),
            np.array(["ab", "ç"]),
            np.arange(4, dtype=">i4"),
        ],
        "report": [{"pass": "convert", "message": "line"}],
    }
    g.add("x", ir.Input(shape=(2, 6, 6), encoding="direct", meta={"range": (0.0, 1.0)}))
    g.add("spk", ir.Input(shape=(4,), encoding="spikes"))
    g.add("bn", ir.BatchNorm(mean=w(2), var=np.abs(w(2)) + 1, gamma=w(2), beta=w(2), eps=1e-300), ["x"])
    g.add("ss", ir.ScaleShift(scale=w(2, 1, 1), shift=w(1, 6, 1)), ["bn"])
    g.add(
        "conv",
        ir.Conv2d(
            weight=w(4, 1, 3, 2), bias=w(4), stride=(2, 1), padding=(1, 0, 2, 1), dilation=(1, 2), groups=2,
            fixed=ir.SynapseFixed(weight=rng.integers(-128, 128, (4, 1, 3, 2)).astype(np.int32), weight_exp=-3, weight_bits=8),
        ),
        ["ss"],
    )
    g.add("relu", ir.ReLU(ceiling=6.0), ["conv"])
    g.add("mp", ir.MaxPool2d(kernel=(2, 3), stride=1, padding=(0, 1, 0, 1), dilation=(1, 1)), ["relu"])
    g.add("h1", ir.IF(shape=(4, 3, 5), threshold=np.full((4, 1, 1), 0.75, np.float32), reset="zero", refractory=2,
                      bias=w(4, 3, 5), fixed=ir.NeuronFixed(vth=100, bias_mant=np.arange(60, dtype=np.int32).reshape(4, 3, 5), bias_exp=2, scale=0.1)), ["mp"])
    g.add("sp", ir.SumPool2d(kernel=2, stride=1, padding=(0, 0, 1, 1),
                             fixed=ir.SynapseFixed(weight=np.ones((1,), np.int16))), ["h1"])
    g.add("ap", ir.AvgPool2d(kernel=(1, 2), stride=(1, 2), padding=(0, 1, 0, 0), count_include_pad=False), ["sp"])
    g.add("t", ir.Transpose(perm=(1, 2, 0)), ["ap"])
    g.add("sc", ir.Scale(scale=np.float32(0.1)), ["t"])
    g.add("add", ir.Add(), ["t", "sc"])
    g.add("f", ir.Flatten(), ["add"])
    g.add("rs", ir.Reshape(shape=(4,)), ["spk"])
    g.add("cat", ir.Concat(axis=0), ["rs", "f"])
    n = int(np.prod(g.infer_shapes()["cat"]))
    g.add("d", ir.Dense(weight=w(5, n)), ["cat"])
    g.add("dl", ir.Delay(steps=3), ["d"])
    g.add("h2", ir.LIF(shape=(5,), threshold=1e-300, decay_current=0.1, decay_voltage=0.25, meta={"ceiling": 6.0}), ["dl"])
    g.add("d2", ir.Dense(weight=w(3, 5)), ["h2"])
    g.add("out", ir.Readout(shape=(3,), mode="membrane", bias=w(3), decay_current=0.75, decay_voltage=0.125,
                            fixed=ir.NeuronFixed(vth=1, bias_mant=np.array([1, -2, 3], np.int32), du=0, dv=4096, scale=1e-300)), ["d2"])
    g.add("count", ir.Readout(shape=(5,), mode="spike_count"), ["h2"])
    g.add("hmp", ir.HostMaxPool2d(kernel=(2, 2), stride=(2, 1), padding=(1, 0, 0, 1), dilation=(1, 2)), ["x"])
    g.add("h3", ir.IF(shape=(2, 3, 5)), ["hmp"])
    g.add("d3", ir.Dense(weight=w(4, 5)), ["h2"])
    g.add("cuba", ir.CubaLIF(shape=(4,), reset="value", v_reset=-0.25, refractory=2, adapt=0.5, adapt_decay=0.125,
                             reset_timing="immediate", du_fixed=2048, dv_fixed=1024, adapt_decay_fixed=512,
                             adapt_fixed=np.array([3, 4, 5, 6], np.int64), v_reset_fixed=np.array([-16, -16, -17, -18], np.int64)),
          ["d3"])
    g.add("atr", ir.ATRLIF(shape=(4,), threshold=0.5, threshold_step=0.25, decay_current=0.5, decay_voltage=0.25,
                           decay_threshold=0.125, decay_refractory=0.75, step_fixed=7), ["d3"])
    # a language model's kinds (snc.ir.sequence)
    sq = ir.sequence
    g.add("tok", sq.Tokens(length=5, vocab=7))
    g.add("emb", sq.Embedding(weight=w(7, 4)), ["tok"])
    g.add("norm", sq.Norm(mode="layer", weight=w(4), bias=w(4), eps=1e-300), ["emb"])
    g.add("code", sq.SpikeCode(coding="bitwise", k=2.5, steps=6, max_count=20, lo=1e-7, hi=3.0), ["norm"])
    for p in ("q", "k", "v"):
        g.add(p, sq.Projection(weight=w(4, 4), bias=w(4) if p == "v" else None), ["code"])
    g.add("gate", sq.Projection(weight=w(2, 4)), ["code"])
    g.add("att", sq.Attention(heads=2, window=3), ["q", "k", "v"])
    g.add("gla", sq.LinearAttention(heads=2), ["q", "k", "v", "gate"])
    g.add("act", sq.Activation(fn="gelu_tanh"), ["att"])
    g.add("prod", sq.Product(), ["act", "gla"])
    g.add("res", sq.Residual(), ["prod", "emb"])
    g.outputs = ["out", "count", "res"]
    return g


def _in_tree_kinds() -> set[str]:
    """Every kind snc defines (not those a test plug-in registered earlier in the session)."""
    return {kind for kind, cls in ir.KINDS.items() if cls.__module__.startswith("snc.")}


def test_every_kind_graph_uses_every_kind():
    assert {node.kind for node in every_kind_graph().nodes.values()} == _in_tree_kinds()


def test_round_trip_of_every_node_kind_is_exact(tmp_path):
    g = every_kind_graph()
    g.infer_shapes()
    for h in round_trips(g, tmp_path):
        assert_same_graph(g, h)
        assert h.topological_order() == g.topological_order()
        assert h.infer_shapes() == g.infer_shapes()
        assert isinstance(h["h1"].fixed, ir.NeuronFixed) and isinstance(h["conv"].fixed, ir.SynapseFixed)
        assert h["sp"].fixed.weight.dtype == np.int16
        assert isinstance(h["conv"].stride, tuple) and isinstance(h.meta["tuple"][1], tuple)
        assert isinstance(h.meta["tuple"][2], list) and isinstance(h.meta["tuple"][2][1], tuple)
        assert h.meta["arrays"][7].dtype == np.dtype(">i4")
        assert h["h2"].threshold == 1e-300 and isinstance(h["h2"].threshold, float)


def test_round_tripped_graph_computes_the_same(tmp_path):
    rng = np.random.default_rng(1)
    g = ir.Graph()
    g.add("x", ir.Input(shape=(2, 5, 5)))
    g.add("c", ir.Conv2d(weight=rng.normal(size=(3, 2, 3, 3)), bias=rng.normal(size=3), padding=1), ["x"])
    g.add("r", ir.ReLU(), ["c"])
    g.add("p", ir.MaxPool2d(kernel=2, stride=2), ["r"])
    g.add("f", ir.Flatten(), ["p"])
    g.add("d", ir.Dense(weight=rng.normal(size=(4, 12)), bias=rng.normal(size=4)), ["f"])
    g.outputs = ["d"]
    x = rng.normal(size=(5, 2, 5, 5)).astype(np.float32)
    want = analog.evaluate(g, x)["d"]
    for h in round_trips(g, tmp_path):
        np.testing.assert_array_equal(analog.evaluate(h, x)["d"], want)


# ---------------------------------------------------------------------------------------------
# Random graphs and metadata (hypothesis).

DTYPES = [np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint64, np.bool_,
          np.complex128, np.dtype(">f8"), np.dtype("<U3")]

small_shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)


@st.composite
def any_array(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    return draw(hnp.arrays(dtype, small_shapes))


def bits_f32(shape_strategy):
    """float32 arrays of arbitrary bit patterns (NaN payloads, subnormals, -0.0 included)."""
    return hnp.arrays(np.uint32, shape_strategy).map(lambda a: a.view(np.float32))


keys = st.text(max_size=6).filter(lambda k: not k.startswith("$"))
leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8) | any_array()
meta_values = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=3)
    | st.lists(children, max_size=3).map(tuple)
    | st.dictionaries(keys, children, max_size=3),
    max_leaves=12,
)
metas = st.dictionaries(keys, meta_values, max_size=4)
dims = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)
pairs = st.tuples(st.integers(1, 3), st.integers(1, 3))
pads = st.tuples(*[st.integers(0, 2)] * 4)
maybe = lambda s: st.none() | s  # noqa: E731

synapse_fixed = st.builds(
    ir.SynapseFixed,
    weight=hnp.arrays(st.sampled_from([np.int8, np.int16, np.int32]), small_shapes),
    weight_exp=st.integers(-10, 10),
    weight_bits=st.integers(2, 9),
)
neuron_fixed = st.builds(
    ir.NeuronFixed,
    vth=st.integers(0, 2**17),
    bias_mant=hnp.arrays(np.int32, small_shapes),
    bias_exp=st.integers(-7, 7),
    du=st.integers(0, 4096),
    dv=st.integers(0, 4096),
    scale=st.floats(),
)

NODES = {
    "Input": st.builds(ir.Input, shape=dims, encoding=st.sampled_from(ENCODINGS), meta=metas),
    "Readout": st.builds(ir.Readout, shape=dims, mode=st.sampled_from(READOUT_MODES), bias=maybe(bits_f32(small_shapes)),
                         decay_current=st.floats(0, 1), decay_voltage=st.floats(0, 1), fixed=maybe(neuron_fixed), meta=metas),
    "IF": st.builds(ir.IF, shape=dims, threshold=st.floats() | bits_f32(small_shapes), reset=st.sampled_from(RESETS),
                    bias=maybe(bits_f32(small_shapes)), refractory=st.integers(0, 5), fixed=maybe(neuron_fixed), meta=metas),
    "LIF": st.builds(ir.LIF, shape=dims, threshold=st.floats() | bits_f32(small_shapes), reset=st.sampled_from(RESETS),
                     bias=maybe(bits_f32(small_shapes)), decay_current=st.floats(0, 1), decay_voltage=st.floats(0, 1),
                     fixed=maybe(neuron_fixed), meta=metas),
    "CubaLIF": st.builds(ir.CubaLIF, shape=dims, threshold=st.floats() | bits_f32(small_shapes),
                         reset=st.sampled_from(RESETS + ("value",)), v_reset=st.floats(), adapt=st.floats(),
                         adapt_decay=st.floats(), reset_timing=st.sampled_from(("immediate", "next_step")),
                         decay_current=st.floats(0, 1), decay_voltage=st.floats(0, 1), du_fixed=st.integers(0, 4096),
                         adapt_fixed=maybe(hnp.arrays(np.int64, small_shapes)), fixed=maybe(neuron_fixed), meta=metas),
    "ATRLIF": st.builds(ir.ATRLIF, shape=dims, threshold=st.floats(), threshold_step=st.floats(),
                        decay_current=st.floats(0, 1), decay_voltage=st.floats(0, 1), decay_threshold=st.floats(0, 1),
                        decay_refractory=st.floats(0, 1), step_fixed=st.integers(-2**40, 2**40),
                        bias=maybe(bits_f32(small_shapes)), fixed=maybe(neuron_fixed), meta=metas),
    "Dense": st.builds(ir.Dense, weight=bits_f32(hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=3)),
                       bias=maybe(bits_f32(small_shapes)), fixed=maybe(synapse_fixed), meta=metas),
    "Conv2d": st.builds(ir.Conv2d, weight=bits_f32(hnp.array_shapes(min_dims=4, max_dims=4, max_side=3)),
                        bias=maybe(bits_f32(small_shapes)), stride=pairs, padding=pads, dilation=pairs,
                        groups=st.integers(1, 3), fixed=maybe(synapse_fixed), meta=metas),
    "SumPool2d": st.builds(ir.SumPool2d, kernel=pairs, stride=pairs, padding=pads, fixed=maybe(synapse_fixed), meta=metas),
    "AvgPool2d": st.builds(ir.AvgPool2d, kernel=pairs, stride=pairs, padding=pads, count_include_pad=st.booleans(), meta=metas),
    "Flatten": st.builds(ir.Flatten, meta=metas),
    "Reshape": st.builds(ir.Reshape, shape=dims, meta=metas),
    "Transpose": st.builds(ir.Transpose, perm=st.permutations(range(3)).map(tuple), meta=metas),
    "Concat": st.builds(ir.Concat, axis=st.integers(0, 2), meta=metas),
    "Add": st.builds(ir.Add, meta=metas),
    "Scale": st.builds(ir.Scale, scale=bits_f32(small_shapes), meta=metas),
    "ReLU": st.builds(ir.ReLU, ceiling=maybe(st.floats()), meta=metas),
    "MaxPool2d": st.builds(ir.MaxPool2d, kernel=pairs, stride=pairs, padding=pads, dilation=pairs, meta=metas),
    "Delay": st.builds(ir.Delay, steps=st.integers(1, 9), meta=metas),
    "HostMaxPool2d": st.builds(ir.HostMaxPool2d, kernel=pairs, stride=pairs, padding=pads, dilation=pairs, meta=metas),
    "BatchNorm": st.integers(0, 3).flatmap(
        lambda n: st.builds(ir.BatchNorm, mean=bits_f32(st.just((n,))), var=bits_f32(st.just((n,))),
                            gamma=bits_f32(st.just((n,))), beta=bits_f32(st.just((n,))), eps=st.floats(), meta=metas)
    ),
    "ScaleShift": st.builds(ir.ScaleShift, scale=bits_f32(small_shapes), shift=bits_f32(small_shapes), meta=metas),
    # language-model kinds (snc.ir.sequence)
    "Tokens": st.builds(ir.sequence.Tokens, length=st.integers(1, 9), vocab=st.integers(1, 2**40), meta=metas),
    "Embedding": st.builds(ir.sequence.Embedding, weight=bits_f32(hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=3)),
                           meta=metas),
    "Projection": st.builds(ir.sequence.Projection, weight=bits_f32(hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=3)),
                            bias=maybe(bits_f32(small_shapes)), meta=metas),
    "Norm": st.builds(ir.sequence.Norm, mode=st.sampled_from(("rms", "layer")), weight=maybe(bits_f32(small_shapes)),
                      bias=maybe(bits_f32(small_shapes)), eps=st.floats(), meta=metas),
    "Activation": st.builds(ir.sequence.Activation, fn=st.sampled_from(ir.sequence.ACTIVATIONS), meta=metas),
    "Product": st.builds(ir.sequence.Product, meta=metas),
    "Residual": st.builds(ir.sequence.Residual, meta=metas),
    "Attention": st.builds(ir.sequence.Attention, heads=st.integers(1, 4), window=st.integers(0, 9), meta=metas),
    "LinearAttention": st.builds(ir.sequence.LinearAttention, heads=st.integers(1, 4), meta=metas),
    "SpikeCode": st.builds(ir.sequence.SpikeCode, coding=st.sampled_from(("binary", "ternary", "bitwise", "graded")),
                           k=st.floats(), steps=maybe(st.integers(1, 99)), max_count=maybe(st.integers(1, 99)),
                           lo=st.floats(), hi=st.floats(), meta=metas),
}


def test_strategies_cover_every_kind():
    assert set(NODES) == _in_tree_kinds()


@st.composite
def graphs(draw):
    names = draw(st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=7, unique=True))
    g = ir.Graph(draw(st.text(max_size=10)))
    for i, name in enumerate(names):
        node = draw(NODES[draw(st.sampled_from(sorted(NODES)))])
        inputs = draw(st.lists(st.sampled_from(names[:i]), unique=True, max_size=3)) if i else []
        g.add(name, node, inputs)
    g.outputs = draw(st.lists(st.sampled_from(names), max_size=3))
    g.meta = draw(metas)
    return g


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(g=graphs())
def test_random_graphs_round_trip_exactly(g):
    # Arbitrary (not necessarily valid) graphs: the storage layer round-trips them all.
    assert_same_graph(g, artifact.from_bytes(artifact.to_bytes(g), validate=False))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "g.snir"
        ir.save(g, path)
        assert_same_graph(g, ir.load(path, validate=False))
        assert os.listdir(folder) == ["g.snir"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(meta=metas)
def test_random_metadata_round_trips_exactly(meta):
    g = ir.Graph()
    g.add("x", ir.Input(shape=(1,), meta=meta))
    g.meta = {"inner": meta, "list": [meta, (meta,)]}
    g.outputs = ["x"]
    h = artifact.from_bytes(artifact.to_bytes(g))
    assert_same(g.meta, h.meta)
    assert_same(g["x"].meta, h["x"].meta)


def test_comparison_helper_is_strict():
    # The helper that the round-trip tests rely on distinguishes what must be distinguished.
    for a, b in [((1,), [1]), (1, 1.0), (True, 1), (0.0, -0.0), (np.zeros(2, np.float32), np.zeros(2, np.float64)),
                 (np.array([np.nan], np.float32), np.array([np.nan], np.float32).view(np.uint32).__add__(1).view(np.float32)),
                 ({"a": 1, "b": 2}, {"b": 2, "a": 1})]:
        with pytest.raises(AssertionError):
            assert_same(a, b)


@pytest.mark.parametrize("value", [{"$tuple": [1, 2]}, {"$array": "a0"}, {"$dataclass": "NeuronFixed", "fields": {"vth": 1}}])
def test_metadata_dicts_with_reserved_looking_keys_round_trip(value):
    g = ir.Graph()
    g.add("x", ir.Input(shape=(1,)))
    g.add("d", ir.Dense(weight=np.ones((1, 1))), ["x"])
    g.outputs = ["d"]
    g.meta = {"user": value}
    g.nodes["d"].meta = {"also": value}
    h = artifact.from_bytes(artifact.to_bytes(g))
    assert_same(g.meta, h.meta)
    assert_same(g.nodes["d"].meta, h.nodes["d"].meta)


# ---------------------------------------------------------------------------------------------
# Corrupt and hostile files.


def small_graph() -> ir.Graph:
    g = ir.Graph("small")
    g.add("x", ir.Input(shape=(1, 4, 4)))
    g.add("conv", ir.Conv2d(weight=np.ones((2, 1, 3, 3), np.float32)), ["x"])
    g.add("relu", ir.ReLU(), ["conv"])
    g.outputs = ["relu"]
    return g


def zip_bytes(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def with_doc(change) -> bytes:
    """A valid artifact whose graph.json went through ``change(doc)``."""
    members = members_of(artifact.to_bytes(small_graph()))
    doc = json.loads(members["graph.json"])
    change(doc)
    members["graph.json"] = json.dumps(doc).encode()
    return zip_bytes(members)


def refused(data: bytes, tmp_path: Path, node: str | None = None, exc_type=ArtifactError) -> SncError:
    path = tmp_path / "bad model.snir"
    path.write_bytes(data)
    with pytest.raises(exc_type) as info:
        ir.load(path)
    exc = info.value
    text = str(exc)
    assert "\n" not in text
    assert exc.file == str(path) and str(path) in text
    if node is not None:
        assert exc.node == node and repr(node) in text
    # from_bytes names the file it is given, too.
    with pytest.raises(exc_type) as info:
        artifact.from_bytes(data, file="given.snir")
    assert info.value.file == "given.snir" and "given.snir" in str(info.value)
    return exc


def test_not_a_zip(tmp_path):
    refused(b"this is not a zip file at all", tmp_path)
    refused(b"", tmp_path)


def test_truncated_zip(tmp_path):
    data = artifact.to_bytes(small_graph())
    refused(data[: len(data) // 2], tmp_path)


@pytest.mark.parametrize("missing", ["graph.json", "arrays.npz"])
def test_zip_without_a_member(tmp_path, missing):
    members = members_of(artifact.to_bytes(small_graph()))
    del members[missing]
    refused(zip_bytes(members), tmp_path)


def test_graph_json_not_json(tmp_path):
    members = members_of(artifact.to_bytes(small_graph()))
    members["graph.json"] = b"{not json"
    refused(zip_bytes(members), tmp_path)
    members["graph.json"] = b"\xff\xfe\x00"
    refused(zip_bytes(members), tmp_path)
    members["graph.json"] = b"[1, 2, 3]"
    refused(zip_bytes(members), tmp_path)


def test_arrays_npz_not_an_npz(tmp_path):
    members = members_of(artifact.to_bytes(small_graph()))
    members["arrays.npz"] = b"garbage"
    refused(zip_bytes(members), tmp_path)


@pytest.mark.parametrize("tag", ["onnx", None, 1, "SNIR"])
def test_wrong_format_tag(tmp_path, tag):
    def change(doc):
        if tag is None:
            del doc["format"]
        else:
            doc["format"] = tag

    exc = refused(with_doc(change), tmp_path)
    assert "format" in exc.message


@pytest.mark.parametrize("version", [ir.FORMAT_VERSION + 1, 99, 0, "1", None])
def test_other_format_versions(tmp_path, version):
    exc = refused(with_doc(lambda doc: doc.update(version=version)), tmp_path)
    assert "version" in exc.message


def test_unknown_node_kind(tmp_path):
    def change(doc):
        doc["nodes"][1]["kind"] = "QuantumConv"

    exc = refused(with_doc(change), tmp_path, node="conv")
    assert "QuantumConv" in exc.message


def test_unknown_field(tmp_path):
    refused(with_doc(lambda doc: doc["nodes"][2]["fields"].update(slope=0.1)), tmp_path, node="relu")


def test_missing_array(tmp_path):
    members = members_of(artifact.to_bytes(small_graph()))
    members["arrays.npz"] = members_of(artifact.to_bytes(ir.Graph()))["arrays.npz"]  # an empty npz
    refused(zip_bytes(members), tmp_path)


@pytest.mark.parametrize(
    "change",
    [
        lambda doc: doc.pop("nodes"),
        lambda doc: doc.pop("outputs"),
        lambda doc: doc["nodes"][1].pop("inputs"),
        lambda doc: doc["nodes"][1].pop("name"),
        lambda doc: doc.update(nodes=[1, 2]),
        lambda doc: doc.update(outputs=3),
    ],
    ids=["no-nodes", "no-outputs", "no-inputs", "no-name", "nodes-not-objects", "outputs-not-list"],
)
def test_malformed_graph_json(tmp_path, change):
    refused(with_doc(change), tmp_path)


def test_edge_to_a_missing_node_is_a_typed_error_naming_file_and_node(tmp_path):
    exc = refused(with_doc(lambda doc: doc["nodes"][2].update(inputs=["ghost"])), tmp_path, node="relu", exc_type=SncError)
    assert "ghost" in exc.message
    exc = refused(with_doc(lambda doc: doc["nodes"].append(doc["nodes"][2])), tmp_path, node="relu", exc_type=SncError)


@pytest.mark.parametrize(
    "change",
    [
        lambda doc: doc["nodes"][1]["fields"].update(stride={"$tuple": [1, 2, 3]}),
        lambda doc: doc["nodes"][1]["fields"].update(weight="abc"),
        lambda doc: doc["nodes"][1].update(fields=[1]),
    ],
    ids=["stride-3-values", "weight-string", "fields-list"],
)
def test_bad_field_values_are_artifact_errors(tmp_path, change):
    refused(with_doc(change), tmp_path, node="conv")


UNPICKLED: list[str] = []


def _record_unpickling(tag: str) -> str:
    UNPICKLED.append(tag)
    return tag


class _Trap:
    """Unpickling an instance calls _record_unpickling: the test sees whether loading unpickled."""

    def __reduce__(self):
        return (_record_unpickling, ("unpickled!",))


def test_object_array_is_refused_and_never_unpickled(tmp_path):
    trap = np.empty(1, dtype=object)
    trap[0] = _Trap()
    npy = io.BytesIO()
    np.save(npy, trap, allow_pickle=True)
    members = members_of(artifact.to_bytes(small_graph()))
    npz = members_of(members["arrays.npz"])
    assert "a0.npy" in npz  # the conv weight
    npz["a0.npy"] = npy.getvalue()
    members["arrays.npz"] = zip_bytes(npz)
    data = zip_bytes(members)
    # The crafted file really does run code when unpickled carelessly.
    with np.load(io.BytesIO(members["arrays.npz"]), allow_pickle=True) as careless:
        careless["a0"]
    assert UNPICKLED == ["unpickled!"]
    UNPICKLED.clear()
    refused(data, tmp_path)
    assert UNPICKLED == []


def test_object_arrays_cannot_be_saved(tmp_path):
    g = small_graph()
    g.meta["objects"] = np.array([1, "a", None], dtype=object)
    with pytest.raises(ArtifactError):
        ir.save(g, tmp_path / "m.snir")
    assert list(tmp_path.iterdir()) == []


def test_load_of_missing_file_or_folder(tmp_path):
    for path in (tmp_path / "absent.snir", tmp_path):
        with pytest.raises(ArtifactError) as info:
            ir.load(path)
        assert info.value.file == str(path) and "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# Atomic save.


class _Unserialisable:
    pass


@pytest.mark.parametrize(
    "bad_meta",
    [{"obj": _Unserialisable()}, {1: "int key"}, {"deep": [1, {"x": (2, {3.5})}]}],
    ids=["object", "int-key", "set-deep-inside"],
)
def test_failed_save_leaves_folder_and_existing_artifact_untouched(tmp_path, bad_meta):
    path = tmp_path / "model.snir"
    good = small_graph()
    ir.save(good, path)
    before = path.read_bytes()
    bad = small_graph()
    bad["relu"].meta.update(bad_meta)  # serialised after the nodes before it: fails midway
    with pytest.raises(ArtifactError) as info:
        ir.save(bad, path)
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.snir"]
    assert path.read_bytes() == before
    assert_same_graph(good, ir.load(path))


def test_failure_while_writing_removes_the_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "model.snir"
    ir.save(small_graph(), path)
    before = path.read_bytes()
    g = small_graph()
    g.meta["changed"] = True

    def failing_replace(src, dst):
        assert Path(src).parent == tmp_path and Path(src).exists()  # the data went to a sibling temp file
        raise OSError("disk full")

    monkeypatch.setattr(artifact.os, "replace", failing_replace)
    with pytest.raises(OSError):
        ir.save(g, path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.snir"]
    assert path.read_bytes() == before
    with pytest.raises(TypeError):
        artifact.write_atomic(tmp_path / "other.snir", "not bytes")  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.snir"]


def test_save_creates_folders_and_overwrites(tmp_path):
    path = tmp_path / "a" / "b" / "m.snir"
    g = small_graph()
    ir.save(g, path)
    g.meta["second"] = (1, 2)
    ir.save(g, path)
    assert_same_graph(g, ir.load(path))
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.snir"]


def test_host_operators_read_only_direct_inputs():
    """A HostMaxPool2d is the host's: the validator names it when a spiking population or a spike
    input lies upstream."""
    g = ir.Graph()
    g.add("x", ir.Input(shape=(1, 4, 4)))
    g.add("c", ir.Conv2d(weight=np.ones((2, 1, 1, 1), np.float32)), ["x"])
    g.add("hmp", ir.HostMaxPool2d(kernel=2, stride=2), ["c"])
    g.add("h", ir.IF(shape=(2, 2, 2)), ["hmp"])
    g.add("f", ir.Flatten(), ["h"])
    g.add("d", ir.Dense(weight=np.ones((3, 8), np.float32)), ["f"])
    g.add("out", ir.Readout(shape=(3,)), ["d"])
    g.outputs = ["out"]
    g.validate()
    bad = g.copy()
    bad.add("hmp2", ir.HostMaxPool2d(kernel=2, stride=2), ["h"])
    bad.add("h2", ir.IF(shape=(2, 1, 1)), ["hmp2"])
    with pytest.raises(InvalidGraph, match=r"hmp2.*downstream of 'h' \(IF\)"):
        bad.validate()
    spikes = g.copy()
    spikes.replace("x", ir.Input(shape=(1, 4, 4), encoding="spikes"))
    with pytest.raises(InvalidGraph, match=r"hmp.*spike input 'x'"):
        spikes.validate()
