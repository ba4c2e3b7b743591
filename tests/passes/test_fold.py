"""``fold-bn`` and ``fold-affine``: each fold leaves the network's function unchanged (the analog
evaluation before and after agree on random inputs, and agree with torch.nn modules built from
the same parameters), removes the nodes it claims to remove, and says so in the report, naming
the nodes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

import snc.ir as ir
from snc.backends import analog
from snc.passes import PassContext, get

RTOL = 1e-5


def close(got: np.ndarray, want: np.ndarray, what: str = "") -> None:
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def out(graph: ir.Graph, x: np.ndarray, mode: str = "rate") -> np.ndarray:
    (name,) = graph.outputs
    return analog.evaluate(graph, x, mode=mode)[name]


def kinds(graph: ir.Graph) -> list[str]:
    return [graph.nodes[n].kind for n in graph.topological_order()]


def run(graph: ir.Graph, *names: str) -> tuple[ir.Graph, PassContext]:
    ctx = PassContext()
    for n in names:
        graph = get(n)(graph, ctx)
    return graph, ctx


def rand(rng, *shape, scale=0.5):
    return (rng.normal(size=shape) * scale).astype(np.float32)


def bn_params(rng, c):
    return dict(mean=rand(rng, c), var=rng.uniform(0.3, 2.0, c).astype(np.float32),
                gamma=rng.uniform(0.5, 1.5, c).astype(np.float32), beta=rand(rng, c), eps=1e-3)


def per_channel(values) -> np.ndarray:
    return np.asarray(values, np.float32).reshape(-1, 1, 1)


# ---------------------------------------------------------------------------------------------
# Networks. Each builder returns (graph, input shape, ANN-only kinds expected after both folds).


def conv_bn(rng):
    g = ir.Graph("conv_bn")
    g.add("x", ir.Input(shape=(3, 8, 8)))
    g.add("c1", ir.Conv2d(weight=rand(rng, 4, 3, 3, 3), bias=rand(rng, 4), padding=1), ["x"])
    g.add("bn1", ir.BatchNorm(**bn_params(rng, 4)), ["c1"])
    g.add("r1", ir.ReLU(), ["bn1"])
    g.add("c2", ir.Conv2d(weight=rand(rng, 5, 4, 3, 3), stride=2, padding=(0, 1, 1, 0)), ["r1"])  # no bias
    g.add("bn2", ir.BatchNorm(**bn_params(rng, 5)), ["c2"])
    g.add("r2", ir.ReLU(), ["bn2"])
    g.add("f", ir.Flatten(), ["r2"])
    g.add("d", ir.Dense(weight=rand(rng, 3, 80), bias=rand(rng, 3)), ["f"])
    g.outputs = ["d"]
    return g, (3, 8, 8), []


def dense_bn(rng):
    g = ir.Graph("dense_bn")
    g.add("x", ir.Input(shape=(10,)))
    g.add("d1", ir.Dense(weight=rand(rng, 8, 10), bias=rand(rng, 8)), ["x"])
    g.add("bn1", ir.BatchNorm(**bn_params(rng, 8)), ["d1"])
    g.add("r1", ir.ReLU(), ["bn1"])
    g.add("d2", ir.Dense(weight=rand(rng, 4, 8)), ["r1"])
    g.add("bn2", ir.BatchNorm(**bn_params(rng, 4)), ["d2"])  # BN as the output layer
    g.outputs = ["bn2"]
    return g, (10,), []


def bn_after_relu(rng):
    g = ir.Graph("bn_after_relu")
    g.add("x", ir.Input(shape=(2, 6, 6)))
    g.add("c1", ir.Conv2d(weight=rand(rng, 3, 2, 3, 3), bias=rand(rng, 3), padding=1), ["x"])
    g.add("r1", ir.ReLU(), ["c1"])
    g.add("bn", ir.BatchNorm(**bn_params(rng, 3)), ["r1"])
    g.add("c2", ir.Conv2d(weight=rand(rng, 4, 3, 2, 2), bias=rand(rng, 4), stride=2), ["bn"])  # unpadded
    g.add("r2", ir.ReLU(), ["c2"])
    g.add("f", ir.Flatten(), ["r2"])
    g.add("d", ir.Dense(weight=rand(rng, 3, 36)), ["f"])
    g.outputs = ["d"]
    return g, (2, 6, 6), []


def bn_after_relu_dense(rng):
    g = ir.Graph("bn_after_relu_dense")
    g.add("x", ir.Input(shape=(6,)))
    g.add("d1", ir.Dense(weight=rand(rng, 5, 6), bias=rand(rng, 5)), ["x"])
    g.add("r1", ir.ReLU(), ["d1"])
    g.add("bn", ir.BatchNorm(**bn_params(rng, 5)), ["r1"])
    g.add("d2", ir.Dense(weight=rand(rng, 3, 5), bias=rand(rng, 3)), ["bn"])
    g.outputs = ["d2"]
    return g, (6,), []


def bn_after_relu_padded(rng):
    """BN after a ReLU, before a padded conv: only a shift can stay (scale 1)."""
    g, shape, _ = bn_after_relu(rng)
    g.replace("c2", g["c2"].replace(padding=(1, 1, 0, 0)))
    g.remove("d")
    g.add("d", ir.Dense(weight=rand(rng, 3, int(np.prod(g.infer_shapes()["f"])))), ["f"])
    g.outputs = ["d"]
    return g, shape, ["ScaleShift"]


def scale_only_before_padded_conv(rng):
    """Per-channel scaling (x / std) before a padded conv: the scale folds into the kernel."""
    g = ir.Graph("scale_only")
    g.add("x", ir.Input(shape=(3, 5, 5)))
    g.add("norm", ir.ScaleShift(scale=per_channel([1 / 0.2, 1 / 0.5, 1 / 0.8]), shift=np.zeros((), np.float32)), ["x"])
    g.add("c", ir.Conv2d(weight=rand(rng, 4, 3, 3, 3), bias=rand(rng, 4), padding=1), ["norm"])
    g.add("r", ir.ReLU(), ["c"])
    g.add("f", ir.Flatten(), ["r"])
    g.add("d", ir.Dense(weight=rand(rng, 2, 100)), ["f"])
    g.outputs = ["d"]
    return g, (3, 5, 5), []


def shift_only_before_padded_conv(rng):
    """x - mean before a padded conv: the shift cannot fold and stays."""
    g, shape, _ = scale_only_before_padded_conv(rng)
    g.replace("norm", ir.ScaleShift(scale=np.ones((), np.float32), shift=per_channel([-0.4, 0.1, -0.7])))
    return g, shape, ["ScaleShift"]


def normalised_input_padded_conv(rng):
    """(x - mean) / std per channel before a padded conv: the scale folds, the shift stays."""
    g, shape, _ = scale_only_before_padded_conv(rng)
    mean, std = np.array([0.4, -0.1, 0.7]), np.array([0.2, 0.5, 0.8])
    g.replace("norm", ir.ScaleShift(scale=per_channel(1 / std), shift=per_channel(-mean / std)))
    return g, shape, ["ScaleShift"]


def normalised_input_conv(rng):
    """(x - mean) / std per channel before an unpadded conv: folds completely."""
    g, shape, _ = normalised_input_padded_conv(rng)
    g.replace("c", g["c"].replace(padding=0))
    g.remove("d")
    g.add("d", ir.Dense(weight=rand(rng, 2, 36)), ["f"])
    g.outputs = ["d"]
    return g, shape, []


def scaleshift_before_dense(rng):
    g = ir.Graph("ss_dense")
    g.add("x", ir.Input(shape=(2, 3, 2)))
    g.add("f", ir.Flatten(), ["x"])
    g.add("ss", ir.ScaleShift(scale=rng.uniform(0.5, 2, 12).astype(np.float32), shift=rand(rng, 12)), ["f"])
    g.add("d1", ir.Dense(weight=rand(rng, 7, 12), bias=rand(rng, 7)), ["ss"])
    g.add("r", ir.ReLU(), ["d1"])
    g.add("d2", ir.Dense(weight=rand(rng, 3, 7)), ["r"])
    g.outputs = ["d2"]
    return g, (2, 3, 2), []


def scaleshift_chain(rng):
    g = ir.Graph("chain")
    g.add("x", ir.Input(shape=(5,)))
    g.add("s1", ir.ScaleShift(scale=np.float32(2.0), shift=np.float32(-1.0)), ["x"])
    g.add("s2", ir.ScaleShift(scale=rng.uniform(0.5, 2, 5).astype(np.float32), shift=np.zeros(5, np.float32)), ["s1"])
    g.add("s3", ir.ScaleShift(scale=np.float32(-0.5), shift=rand(rng, 5)), ["s2"])
    g.add("d1", ir.Dense(weight=rand(rng, 6, 5), bias=rand(rng, 6)), ["s3"])
    g.add("r", ir.ReLU(), ["d1"])
    g.add("d2", ir.Dense(weight=rand(rng, 2, 6)), ["r"])
    g.add("s4", ir.ScaleShift(scale=np.float32(3.0), shift=np.float32(0.25)), ["d2"])  # after a Dense: folds back
    g.add("s5", ir.ScaleShift(scale=np.float32(1.0), shift=np.float32(0.0)), ["s4"])  # identity
    g.outputs = ["s5"]
    return g, (5,), []


def grouped_conv_bn(rng):
    g = ir.Graph("grouped")
    g.add("x", ir.Input(shape=(4, 6, 6)))
    g.add("c1", ir.Conv2d(weight=rand(rng, 6, 2, 3, 3), bias=rand(rng, 6), padding=1, groups=2), ["x"])
    g.add("bn1", ir.BatchNorm(**bn_params(rng, 6)), ["c1"])
    g.add("r1", ir.ReLU(), ["bn1"])
    g.add("c2", ir.Conv2d(weight=rand(rng, 6, 1, 3, 3), dilation=2, groups=6), ["r1"])  # depthwise
    g.add("bn2", ir.BatchNorm(**bn_params(rng, 6)), ["c2"])
    g.add("r2", ir.ReLU(), ["bn2"])
    g.add("f", ir.Flatten(), ["r2"])
    g.add("d", ir.Dense(weight=rand(rng, 3, 24)), ["f"])
    g.outputs = ["d"]
    return g, (4, 6, 6), []


def grouped_conv_scale(rng):
    """A per-channel scale (no shift) before a grouped conv folds into the right kernel slices."""
    g = ir.Graph("grouped_scale")
    g.add("x", ir.Input(shape=(4, 5, 5)))
    g.add("ss", ir.ScaleShift(scale=per_channel([0.5, 2.0, -1.0, 3.0]), shift=np.zeros((), np.float32)), ["x"])
    g.add("c", ir.Conv2d(weight=rand(rng, 6, 2, 3, 3), bias=rand(rng, 6), groups=2), ["ss"])
    g.add("r", ir.ReLU(), ["c"])
    g.add("f", ir.Flatten(), ["r"])
    g.add("d", ir.Dense(weight=rand(rng, 2, 54)), ["f"])
    g.outputs = ["d"]
    return g, (4, 5, 5), []


def grouped_conv_normalised(rng):
    g, shape, _ = grouped_conv_scale(rng)
    g.replace("ss", ir.ScaleShift(scale=per_channel([0.5, 2.0, -1.0, 3.0]), shift=per_channel([0.1, -0.3, 0.2, 0.0])))
    return g, shape, []


def scaleshift_after_conv(rng):
    g = ir.Graph("after_conv")
    g.add("x", ir.Input(shape=(2, 5, 5)))
    g.add("c", ir.Conv2d(weight=rand(rng, 3, 2, 3, 3), padding=1), ["x"])
    g.add("ss", ir.ScaleShift(scale=per_channel([2.0, -0.5, 1.5]), shift=per_channel([0.1, 0.2, -0.3])), ["c"])
    g.add("r", ir.ReLU(), ["ss"])
    g.add("f", ir.Flatten(), ["r"])
    g.add("d", ir.Dense(weight=rand(rng, 2, 75)), ["f"])
    g.outputs = ["d"]
    return g, (2, 5, 5), []


def spatial_scaleshift_before_conv(rng):
    """Constants that vary over space cannot fold into a kernel: they stay, and stay exact."""
    g, shape, _ = scaleshift_after_conv(rng)
    g.remove("ss")
    g.add("ss", ir.ScaleShift(scale=rng.uniform(0.5, 2, (1, 5, 5)).astype(np.float32), shift=rand(rng, 2, 5, 5)), ["x"])
    g.set_inputs("c", ["ss"])
    g.set_inputs("r", ["c"])
    return g, shape, ["ScaleShift"]


def bn_on_shared_conv(rng):
    """BN after a conv that has a second user: the conv cannot absorb it."""
    g = ir.Graph("shared")
    g.add("x", ir.Input(shape=(2, 4, 4)))
    g.add("c", ir.Conv2d(weight=rand(rng, 2, 2, 3, 3), bias=rand(rng, 2), padding=1), ["x"])
    g.add("bn", ir.BatchNorm(**bn_params(rng, 2)), ["c"])
    g.add("r", ir.ReLU(), ["bn"])
    g.add("add", ir.Add(), ["r", "c"])
    g.add("f", ir.Flatten(), ["add"])
    g.add("d", ir.Dense(weight=rand(rng, 2, 32)), ["f"])
    g.outputs = ["d"]
    return g, (2, 4, 4), ["ScaleShift"]


ALL = [
    conv_bn, dense_bn, bn_after_relu, bn_after_relu_dense, bn_after_relu_padded, scale_only_before_padded_conv,
    shift_only_before_padded_conv, normalised_input_padded_conv, normalised_input_conv, scaleshift_before_dense,
    scaleshift_chain, grouped_conv_bn, grouped_conv_scale, grouped_conv_normalised, scaleshift_after_conv,
    spatial_scaleshift_before_conv, bn_on_shared_conv,
]
# A scale and a shift (both non-trivial) before a Conv2d: the cases the fold_affine bug breaks.
CASES = ALL


@pytest.mark.parametrize("make", ALL, ids=lambda f: f.__name__)
def test_fold_bn_preserves_the_function_and_removes_every_batchnorm(make):
    rng = np.random.default_rng(0)
    ann, shape, _ = make(rng)
    x = rng.normal(size=(16,) + shape).astype(np.float32)
    want = out(ann, x)
    folded, _ = run(ann, "fold-bn")
    folded.validate()
    assert "BatchNorm" not in kinds(folded)
    n_bn = kinds(ann).count("BatchNorm")
    n_conv_dense = sum(k in ("Conv2d", "Dense") for k in kinds(ann))
    assert len(folded) == len(ann) - n_bn + kinds(folded).count("ScaleShift") - kinds(ann).count("ScaleShift")
    assert sum(k in ("Conv2d", "Dense") for k in kinds(folded)) == n_conv_dense
    close(out(folded, x), want, "after fold-bn")


@pytest.mark.parametrize("make", CASES, ids=lambda f: f.__name__)
def test_folds_preserve_the_function_and_remove_what_they_fold(make):
    rng = np.random.default_rng(0)
    ann, shape, left = make(rng)
    ann.validate()
    before_kinds = kinds(ann)
    x = rng.normal(size=(16,) + shape).astype(np.float32)
    want = out(ann, x)
    g1, _ = run(ann, "fold-bn")
    g2, _ = run(g1, "fold-affine")
    g2.validate()
    close(out(g2, x), want, "after fold-affine")
    assert sorted(k for k in kinds(g2) if k in ("BatchNorm", "ScaleShift")) == left
    # The passes return new graphs: the ANN is untouched.
    assert kinds(ann) == before_kinds
    np.testing.assert_array_equal(out(ann, x), want)
    # Whatever stays, convert turns into exact currents.
    snn, _ = run(g2, "convert")
    assert snn.is_spiking and not any(k in ("BatchNorm", "ScaleShift") for k in kinds(snn))
    close(out(snn, x, mode="relu"), want, "after convert")


# ---------------------------------------------------------------------------------------------
# Against torch modules with the same parameters.


def _torch_bn(cls, p):
    bn = cls(len(p["mean"]), eps=p["eps"])
    bn.running_mean.copy_(torch.from_numpy(p["mean"]))
    bn.running_var.copy_(torch.from_numpy(p["var"]))
    bn.weight.data.copy_(torch.from_numpy(p["gamma"]))
    bn.bias.data.copy_(torch.from_numpy(p["beta"]))
    return bn.eval()


@torch.no_grad()
def test_conv_bn_fold_matches_torch():
    rng = np.random.default_rng(1)
    w, b, p = rand(rng, 4, 2, 3, 3), rand(rng, 4), bn_params(rng, 4)
    conv = nn.Conv2d(2, 4, 3, padding=1)
    conv.weight.data.copy_(torch.from_numpy(w))
    conv.bias.data.copy_(torch.from_numpy(b))
    model = nn.Sequential(conv, _torch_bn(nn.BatchNorm2d, p), nn.ReLU()).eval()
    g = ir.Graph()
    g.add("x", ir.Input(shape=(2, 5, 5)))
    g.add("c", ir.Conv2d(weight=w, bias=b, padding=1), ["x"])
    g.add("bn", ir.BatchNorm(**p), ["c"])
    g.add("r", ir.ReLU(), ["bn"])
    g.outputs = ["r"]
    x = rng.normal(size=(6, 2, 5, 5)).astype(np.float32)
    want = model(torch.from_numpy(x)).numpy()
    folded, ctx = run(g, "fold-bn")
    assert kinds(folded) == ["Input", "Conv2d", "ReLU"]
    close(out(folded, x), want)
    # The folded conv alone is torch's conv with W' = W s, b' = b s + t.
    s = p["gamma"] / np.sqrt(p["var"].astype(np.float64) + p["eps"])
    close(folded["c"].weight, w * s[:, None, None, None])
    close(folded["c"].bias, b * s + p["beta"] - s * p["mean"])


@torch.no_grad()
def test_dense_bn_fold_matches_torch():
    rng = np.random.default_rng(2)
    w, p = rand(rng, 5, 7), bn_params(rng, 5)
    lin = nn.Linear(7, 5, bias=False)
    lin.weight.data.copy_(torch.from_numpy(w))
    model = nn.Sequential(lin, _torch_bn(nn.BatchNorm1d, p)).eval()
    g = ir.Graph()
    g.add("x", ir.Input(shape=(7,)))
    g.add("d", ir.Dense(weight=w), ["x"])
    g.add("bn", ir.BatchNorm(**p), ["d"])
    g.outputs = ["bn"]
    x = rng.normal(size=(9, 7)).astype(np.float32)
    folded, _ = run(g, "fold-bn")
    assert kinds(folded) == ["Input", "Dense"] and folded.outputs == ["d"]
    close(out(folded, x), model(torch.from_numpy(x)).numpy())


@torch.no_grad()
def test_normalised_input_matches_torch_before_folding():
    # Anchors the ScaleShift semantics (x * s + t) that the fold cases rely on.
    rng = np.random.default_rng(3)
    g, shape, _ = normalised_input_padded_conv(rng)
    x = rng.normal(size=(4,) + shape).astype(np.float32)
    mean = torch.tensor([0.4, -0.1, 0.7]).reshape(1, 3, 1, 1)
    std = torch.tensor([0.2, 0.5, 0.8]).reshape(1, 3, 1, 1)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    conv.weight.data.copy_(torch.from_numpy(g["c"].weight))
    conv.bias.data.copy_(torch.from_numpy(g["c"].bias))
    lin = nn.Linear(100, 2, bias=False)
    lin.weight.data.copy_(torch.from_numpy(g["d"].weight))
    want = lin(torch.relu(conv((torch.from_numpy(x) - mean) / std)).flatten(1)).numpy()
    close(out(g, x), want)


# ---------------------------------------------------------------------------------------------
# What the folds leave and report.


def test_fold_bn_report_names_the_nodes():
    rng = np.random.default_rng(0)
    g, _, _ = conv_bn(rng)
    folded, ctx = run(g, "fold-bn")
    assert kinds(folded) == ["Input", "Conv2d", "ReLU", "Conv2d", "ReLU", "Flatten", "Dense"]
    notes = [e for e in ctx.report if e["pass"] == "fold-bn"]
    assert [e["node"] for e in notes] == ["c1", "c2"]
    for e, bn in zip(notes, ["bn1", "bn2"]):
        assert repr(bn) in e["message"] and repr(e["node"]) in e["message"]
    assert folded.inputs_of("r1") == ["c1"] and folded["c2"].bias is not None


def test_fold_bn_keeps_a_bn_it_cannot_fold_as_scaleshift():
    rng = np.random.default_rng(0)
    g, _, _ = bn_after_relu(rng)
    folded, ctx = run(g, "fold-bn")
    assert kinds(folded) == ["Input", "Conv2d", "ReLU", "ScaleShift", "Conv2d", "ReLU", "Flatten", "Dense"]
    ss = folded["bn"]
    p = g["bn"]
    s = p.gamma / np.sqrt(p.var.astype(np.float64) + p.eps)
    close(ss.scale.ravel(), s)
    close(ss.shift.ravel(), p.beta - s * p.mean)
    assert ss.scale.shape == (3, 1, 1)
    (note,) = ctx.report
    assert note["node"] == "bn" and "'bn'" in note["message"] and "'r1'" in note["message"]


def test_bn_on_an_output_conv_is_not_folded_into_it():
    rng = np.random.default_rng(0)
    g = ir.Graph()
    g.add("x", ir.Input(shape=(2, 4, 4)))
    g.add("c", ir.Conv2d(weight=rand(rng, 2, 2, 3, 3)), ["x"])
    g.add("bn", ir.BatchNorm(**bn_params(rng, 2)), ["c"])
    g.outputs = ["c", "bn"]
    x = rng.normal(size=(3, 2, 4, 4)).astype(np.float32)
    want = analog.evaluate(g, x)
    folded, _ = run(g, "fold-bn", "fold-affine")
    got = analog.evaluate(folded, x)
    np.testing.assert_array_equal(got["c"], want["c"])  # the conv output is still the conv's
    close(got["bn"], want["bn"])


def test_fold_affine_report_names_the_nodes():
    rng = np.random.default_rng(0)
    g, _, _ = scaleshift_chain(rng)
    folded, ctx = run(g, "fold-affine")
    assert kinds(folded) == ["Input", "Dense", "ReLU", "Dense"]
    assert folded.outputs == ["d2"]
    notes = [e for e in ctx.report if e["pass"] == "fold-affine"]
    mentioned = " ".join(e["message"] for e in notes)
    for name in ("s1", "s2", "s3", "s4", "s5"):
        assert repr(name) in mentioned, name
    for e in notes:
        assert e["node"] in g.nodes and repr(e["node"]) in e["message"]


def test_kept_shift_is_reported_by_name():
    rng = np.random.default_rng(0)
    g, _, _ = shift_only_before_padded_conv(rng)
    folded, ctx = run(g, "fold-affine")
    assert kinds(folded) == ["Input", "ScaleShift", "Conv2d", "ReLU", "Flatten", "Dense"]
    notes = [e for e in ctx.report if e.get("node") == "norm"]
    assert notes and all("'norm'" in e["message"] for e in notes)


def test_identity_scaleshift_beside_its_source_in_an_add():
    rng = np.random.default_rng(0)
    g = ir.Graph()
    g.add("x", ir.Input(shape=(3,)))
    g.add("d", ir.Dense(weight=rand(rng, 3, 3), bias=rand(rng, 3)), ["x"])
    g.add("r", ir.ReLU(), ["d"])
    g.add("ss", ir.ScaleShift(scale=np.ones((), np.float32), shift=np.zeros((), np.float32)), ["r"])
    g.add("add", ir.Add(), ["ss", "r"])  # y = r + r
    g.add("d2", ir.Dense(weight=rand(rng, 2, 3)), ["add"])
    g.outputs = ["d2"]
    x = rng.normal(size=(5, 3)).astype(np.float32)
    folded, _ = run(g, "fold-affine")
    close(out(folded, x), out(g, x))


def test_shift_shared_by_a_padded_and_an_unpadded_conv():
    rng = np.random.default_rng(0)
    g = ir.Graph()
    g.add("x", ir.Input(shape=(2, 5, 5)))
    g.add("norm", ir.ScaleShift(scale=np.ones((2, 1, 1), np.float32), shift=per_channel([-1.0, 0.3])), ["x"])
    g.add("padded", ir.Conv2d(weight=rand(rng, 3, 2, 3, 3), padding=1), ["norm"])
    g.add("unpadded", ir.Conv2d(weight=rand(rng, 3, 2, 3, 3)), ["norm"])
    g.add("fp", ir.Flatten(), ["padded"])
    g.add("fu", ir.Flatten(), ["unpadded"])
    g.add("cat", ir.Concat(axis=0), ["fp", "fu"])
    g.outputs = ["cat"]
    x = rng.normal(size=(4, 2, 5, 5)).astype(np.float32)
    folded, _ = run(g, "fold-affine")
    close(out(folded, x), out(g, x))
