"""The PyTorch frontend: a traced module (or a saved .pt2 program) becomes an ANN graph that
computes exactly what the module computes, on any batch size; what it cannot represent is
refused by name; and a .pt2 file is read without unpickling anything from it."""
from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch
import torch.nn as nn
import torch.nn.functional as F

from snc.backends.analog import evaluate
from snc.errors import InvalidModel, UnsupportedOperator
from snc.frontends import load_model
from snc.frontends.torch import SUPPORTED_OPS, from_exported, from_torch, load_pt2

ATOL = 1e-5


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _randomise_bn(model: nn.Module) -> nn.Module:
    """Non-trivial running statistics, so that BatchNorm is visibly applied."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model


def _reference(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(x).numpy()


def _assert_matches(model: nn.Module, sample_shape: tuple[int, ...], *, batch: int = 7, example_batch: int = 1):
    """Trace with a batch of ``example_batch``, evaluate the graph on ``batch`` samples."""
    model.eval()
    graph = from_torch(model, torch.randn(example_batch, *sample_shape))
    x = torch.randn(batch, *sample_shape)
    (out,) = graph.outputs
    got = evaluate(graph, x.numpy())[out]
    want = _reference(model, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=1e-5)
    return graph


def _kinds(graph) -> list[str]:
    return [graph.nodes[n].kind for n in graph.topological_order()]


# --------------------------------------------------------------------------------------------
# Models: modules and their functional forms compute the same as in torch
# --------------------------------------------------------------------------------------------
def test_mlp_matches_torch_and_keeps_module_names():
    model = nn.Sequential()
    model.add_module("fc1", nn.Linear(20, 32))
    model.add_module("bn", nn.BatchNorm1d(32))
    model.add_module("act", nn.ReLU())
    model.add_module("drop", nn.Dropout(0.5))
    model.add_module("fc2", nn.Linear(32, 10))
    graph = _assert_matches(_randomise_bn(model), (20,))
    assert {"fc1", "bn", "act", "fc2"} <= set(graph.nodes)
    assert _kinds(graph) == ["Input", "Dense", "BatchNorm", "ReLU", "Dense"]  # dropout bypassed
    assert graph.outputs == ["fc2"]
    assert graph.meta["source"]["format"] == "torch"


class _CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 8, 3, stride=1, padding=1, groups=2), nn.ReLU(), nn.AvgPool2d(2),
            nn.AdaptiveAvgPool2d((2, 2)),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(32, 10))

    def forward(self, x):
        return self.head(self.features(x))


def test_cnn_conv_batchnorm_relu_pools_matches_torch():
    graph = _assert_matches(_randomise_bn(_CNN()), (3, 16, 16))
    assert {"features.0", "features.1", "features.3", "features.6", "features.7", "head.0", "head.1"} <= set(graph.nodes)
    assert graph.nodes["features.7"].kind == "AvgPool2d"  # adaptive 4x4 -> 2x2
    assert graph.nodes["features.7"].kernel == (2, 2)


def test_global_average_pool_forms():
    class GAP(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3)
            self.pool = nn.AdaptiveAvgPool2d(1)

        def forward(self, x):
            y = F.relu(self.conv(x))
            a = torch.flatten(self.pool(y), 1)
            b = y.mean((2, 3))  # keepdim=False -> pool + flatten
            c = y.mean((-1, -2), keepdim=True).reshape(x.size(0), -1)
            return a + b + c

    graph = _assert_matches(GAP(), (3, 9, 9))
    assert _kinds(graph).count("AvgPool2d") == 3


def test_functional_model_matches_torch():
    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.w1 = nn.Parameter(torch.randn(6, 1, 3, 3) * 0.3)
            self.b1 = nn.Parameter(torch.randn(6) * 0.1)
            self.w2 = nn.Parameter(torch.randn(10, 6 * 5 * 5) * 0.1)
            self.b2 = nn.Parameter(torch.randn(10) * 0.1)
            self.w3 = nn.Parameter(torch.randn(10, 4) * 0.1)

        def forward(self, x):
            y = F.relu(F.conv2d(x, self.w1, self.b1, padding=1))
            y = F.max_pool2d(y, 2)
            y = torch.relu(y).relu_()
            z = F.relu(F.linear(torch.flatten(y, 1), self.w2, self.b2), inplace=True)
            v = F.linear(y.view(y.size(0), -1), self.w2)
            return torch.mm(z + v, self.w3) + self.b2[:4]  # mm + add -> one Dense with a bias

    graph = _assert_matches(Functional(), (1, 10, 10))
    assert "MaxPool2d" in _kinds(graph)
    dense = [graph.nodes[n] for n in graph.topological_order() if graph.nodes[n].kind == "Dense"]
    assert len(dense) == 3 and dense[-1].bias is not None  # the trailing "+ b" became the bias


def test_decomposed_core_aten_program_matches_torch():
    model = _randomise_bn(_CNN()).eval()
    ep = torch.export.export(model, (torch.randn(1, 3, 16, 16),)).run_decompositions()
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert "aten.convolution.default" in targets and "aten.addmm.default" in targets
    graph = from_exported(ep)
    x = torch.randn(5, 3, 16, 16)
    np.testing.assert_allclose(evaluate(graph, x.numpy())[graph.outputs[0]], _reference(model, x), atol=ATOL)
    assert "features.0" in graph.nodes and "head.1" in graph.nodes


class _Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


def test_residual_block_add_matches_torch():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), _Block(4), _Block(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    graph = _assert_matches(_randomise_bn(model), (3, 6, 6))
    assert graph.nodes["1"].kind == "Add"  # the block's own operation takes the block's name
    assert set(graph.inputs_of("1")) == {"1.bn2", "0"}
    assert {"1.relu", "1.relu_1", "2.relu", "2.relu_1"} <= set(graph.nodes)  # a reused nn.ReLU


def test_cat_of_two_branches_matches_torch():
    class Branches(nn.Module):
        def __init__(self):
            super().__init__()
            self.left = nn.Conv2d(3, 4, 3, padding=1)
            self.right = nn.Conv2d(3, 2, 4, padding="same")  # even kernel: asymmetric padding
            self.fc = nn.Linear(6 * 8 * 8 + 6, 3)

        def forward(self, x):
            y = torch.cat([F.relu(self.left(x)), F.relu(self.right(x))], dim=1)
            pooled = torch.cat([x.mean((2, 3)), x.mean((2, 3)) * 2.0], dim=-1)
            return self.fc(torch.cat([torch.flatten(y, 1), pooled], dim=1))

    graph = _assert_matches(Branches(), (3, 8, 8))
    concat = [graph.nodes[n] for n in graph.topological_order() if graph.nodes[n].kind == "Concat"]
    assert [c.axis for c in concat] == [0, 0, 0]
    assert graph.nodes["right"].padding == (1, 1, 2, 2)


@pytest.mark.parametrize(
    "act, ceiling",
    [
        (nn.ReLU6(), 6.0),
        (nn.Hardtanh(0.0, 2.5), 2.5),
        (lambda x: torch.clamp(x, 0, 1.5), 1.5),
        (lambda x: x.clamp(min=0), None),
        (lambda x: F.hardtanh(x, 0.0, 3.0), 3.0),
        (lambda x: torch.clamp_min(x, 0.0), None),
    ],
)
def test_bounded_relus(act, ceiling):
    class Act(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 16)
            self.act = act if isinstance(act, nn.Module) else None

        def forward(self, x):
            y = self.fc(x) * 4.0
            return self.act(y) if self.act is not None else act(y)

    graph = _assert_matches(Act(), (8,))
    relus = [graph.nodes[n] for n in graph.nodes if graph.nodes[n].kind == "ReLU"]
    assert len(relus) == 1 and relus[0].ceiling == ceiling


def test_input_normalisation_inside_forward_matches_torch():
    class Normalised(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
            x = (x - self.mean) / std
            x = x * 2.0 + 0.5
            return self.conv(1 - x)

    graph = _assert_matches(Normalised(), (3, 7, 7))
    kinds = _kinds(graph)
    assert kinds == ["Input", "ScaleShift", "Conv2d"]  # one fused affine map
    ss = graph.nodes[graph.inputs_of("conv")[0]]
    assert ss.scale.shape == (3, 1, 1)


def test_permute_of_nhwc_input_matches_torch():
    class NHWC(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            y = F.relu(self.conv(x.permute(0, 3, 1, 2)))
            return y.transpose(1, 3).contiguous()

    graph = _assert_matches(NHWC(), (9, 9, 3))
    transposes = [graph.nodes[n] for n in graph.nodes if graph.nodes[n].kind == "Transpose"]
    assert [t.perm for t in transposes] == [(2, 0, 1), (2, 1, 0)]


def test_purely_linear_model():
    _assert_matches(nn.Sequential(nn.Flatten(), nn.Linear(12, 3)), (3, 4))


def test_trailing_softmax_is_dropped_with_a_note():
    model = nn.Sequential(nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 6), nn.Softmax(dim=1)).eval()
    graph = from_torch(model, torch.randn(1, 12))
    assert "Softmax" not in _kinds(graph) and graph.outputs == ["2"]
    assert any("softmax" in note for note in graph.meta["notes"])
    x = torch.randn(50, 12)
    logits = evaluate(graph, x.numpy())["2"]
    np.testing.assert_allclose(logits, _reference(model[:3], x), atol=ATOL)
    np.testing.assert_array_equal(logits.argmax(1), _reference(model, x).argmax(1))


def test_trailing_log_softmax_functional_is_dropped():
    class LogSm(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 4)

        def forward(self, x):
            return F.log_softmax(self.fc(F.relu(x)), dim=-1)

    graph = from_torch(LogSm(), torch.randn(1, 5))
    assert graph.outputs == ["fc"] and "log_softmax" in graph.meta["notes"][0]


def test_softmax_in_the_middle_is_unsupported():
    class Mid(nn.Module):
        def forward(self, x):
            return torch.softmax(x, 1) * 2.0

    with pytest.raises(UnsupportedOperator, match="softmax"):
        from_torch(Mid(), torch.randn(1, 4))


# --------------------------------------------------------------------------------------------
# Batch handling, modes, inputs
# --------------------------------------------------------------------------------------------
def test_traced_with_batch_1_runs_on_any_batch():
    model = _randomise_bn(_CNN())
    for example_batch in (1, 3):
        graph = _assert_matches(model, (3, 16, 16), batch=7, example_batch=example_batch)
        assert graph.nodes["x"].shape == (3, 16, 16)


def test_numpy_example_input_and_mode_restored():
    model = _randomise_bn(_CNN()).train()
    model.head.eval()
    graph = from_torch(model, np.random.rand(1, 3, 16, 16))
    assert model.training and model.features[1].training and not model.head.training
    x = torch.randn(4, 3, 16, 16)
    np.testing.assert_allclose(evaluate(graph, x.numpy())[graph.outputs[0]], _reference(model, x), atol=ATOL)


@pytest.mark.parametrize(
    "forward, what",
    [
        (lambda x: x.view(-1), "batch"),
        (lambda x: torch.flatten(x), "batch"),
        (lambda x: x.mean(0, keepdim=True), "batch"),
        (lambda x: torch.cat([x, x], dim=0), "batch"),
        (lambda x: x.permute(1, 0, 2, 3), "batch"),
    ],
)
def test_operations_on_the_batch_axis_are_unsupported(forward, what):
    class Bad(nn.Module):
        def forward(self, x):
            return forward(F.relu(x))

    with pytest.raises(UnsupportedOperator, match=what):
        from_torch(Bad(), torch.randn(2, 3, 4, 4))


def test_in_place_relu_on_an_aliased_tensor_is_functionalised():
    class Alias(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 6)

        def forward(self, x):
            y = self.fc(x)
            v = y.view(y.size(0), 2, 3)
            v.relu_()  # mutates y through the view
            return y + x

    graph = _assert_matches(Alias(), (6,), example_batch=2)
    assert "ReLU" in _kinds(graph)


def test_repeated_operands_are_joined_correctly():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            y = F.relu(self.fc(x))
            return torch.cat([y, y], 1) + torch.cat([y + y, y - 0.5 * y], 1)

    _assert_matches(Twice(), (4,))


def test_pooling_geometry_variants():
    class Pools(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3, stride=2, dilation=2, padding=(1, 2))

        def forward(self, x):
            y = F.relu(self.conv(x))
            a = F.max_pool2d(y, 3, stride=2, padding=1, ceil_mode=True)
            b = F.avg_pool2d(y, 3, stride=2, padding=1, count_include_pad=False)
            c = F.avg_pool2d(y, 3, stride=2, ceil_mode=True)  # a last, partial window per axis
            d = F.max_pool2d(y, 2, dilation=2)
            return torch.cat([a.flatten(1), b.flatten(1), c.flatten(1), d.flatten(1)], 1)

    graph = _assert_matches(Pools(), (2, 17, 19))
    assert graph.nodes["max_pool2d"].padding == (1, 1, 2, 2)  # ceil_mode: one more -inf row/column
    assert graph.nodes["avg_pool2d_1"].padding == (0, 0, 1, 1)


@settings(max_examples=25, deadline=None)
@given(
    size=st.integers(5, 12),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    dilation=st.integers(1, 2),
    pool=st.sampled_from(["max", "avg", "avg_excl"]),
    pool_kernel=st.integers(1, 3),
    ceil_mode=st.booleans(),
)
def test_conv_and_pool_geometry_property(size, kernel, stride, padding, dilation, pool, pool_kernel, ceil_mode):
    """Any valid conv geometry followed by any valid pooling geometry computes what torch does."""
    conv_out = (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1
    pool_pad = min(padding, pool_kernel // 2)
    if conv_out < pool_kernel:
        return

    class Geo(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 3, kernel, stride=stride, padding=padding, dilation=dilation)

        def forward(self, x):
            y = F.relu(self.conv(x))
            if pool == "max":
                return F.max_pool2d(y, pool_kernel, 2, pool_pad, ceil_mode=ceil_mode)
            return F.avg_pool2d(y, pool_kernel, 2, pool_pad, ceil_mode=ceil_mode, count_include_pad=pool == "avg")

    try:
        _assert_matches(Geo(), (2, size, size + 1), batch=3)
    except UnsupportedOperator as exc:  # the one documented gap: avg + ceil_mode + padding + include_pad
        assert pool == "avg" and ceil_mode and pool_pad, str(exc)


def test_several_outputs():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(4, 8)
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            features = F.relu(self.body(x))
            return self.head(features), features

    model = Two().eval()
    graph = from_torch(model, torch.randn(1, 4))
    assert graph.outputs == ["head", "relu"]
    x = torch.randn(6, 4)
    out = evaluate(graph, x.numpy())
    with torch.no_grad():
        logits, features = model(x)
    np.testing.assert_allclose(out["head"], logits.numpy(), atol=ATOL)
    np.testing.assert_allclose(out["relu"], features.numpy(), atol=ATOL)


# --------------------------------------------------------------------------------------------
# Refusals
# --------------------------------------------------------------------------------------------
def test_sigmoid_is_unsupported_naming_node_module_and_supported_ops():
    class WithSigmoid(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.gate = nn.Sigmoid()

        def forward(self, x):
            return self.gate(self.fc(x))

    with pytest.raises(UnsupportedOperator) as info:
        from_torch(WithSigmoid(), torch.randn(1, 4))
    text = str(info.value)
    assert "'sigmoid'" in text and "aten.sigmoid" in text and "'gate'" in text
    assert "aten.conv2d" in text and "\n" not in text
    assert info.value.node == "sigmoid"
    assert SUPPORTED_OPS == sorted(SUPPORTED_OPS)


@pytest.mark.parametrize(
    "layer, shape, match",
    [
        (nn.Hardtanh(), (4,), "min_val 0"),
        (nn.LeakyReLU(0.1), (4,), r"aten.leaky_relu in module .* is not supported"),
        (nn.AdaptiveAvgPool2d(3), (2, 7, 7), "must divide"),
        (nn.AvgPool2d(2, divisor_override=3), (2, 4, 4), "divisor_override"),
        (nn.ConvTranspose2d(2, 2, 3), (2, 4, 4), "not supported"),
        (nn.Linear(3, 2), (4, 3), "flatten it first"),
    ],
)
def test_unrepresentable_layers_are_refused_with_a_reason(layer, shape, match):
    model = nn.Sequential(nn.ReLU(), layer)
    with pytest.raises(UnsupportedOperator, match=match) as info:
        from_torch(model, torch.randn(1, *shape))
    assert info.value.node is not None and "'1'" in str(info.value)


def test_functional_sigmoid_is_unsupported():
    class F2(nn.Module):
        def forward(self, x):
            return torch.sigmoid(x) + 1

    with pytest.raises(UnsupportedOperator, match="sigmoid"):
        from_torch(F2(), torch.randn(1, 4))


def test_lstm_is_unsupported():
    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(4, 8, batch_first=True)

        def forward(self, x):
            return self.rnn(x)[0]

    with pytest.raises(UnsupportedOperator, match="lstm") as info:
        from_torch(Seq(), torch.randn(1, 3, 4))
    assert "'rnn'" in str(info.value)


def test_product_of_two_computed_tensors_is_unsupported():
    class Gate(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x) * x

    with pytest.raises(UnsupportedOperator, match="product"):
        from_torch(Gate(), torch.randn(1, 4))


def test_non_module_is_invalid():
    with pytest.raises(InvalidModel):
        from_torch(lambda x: x, torch.randn(1, 4))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# .pt2 programs
# --------------------------------------------------------------------------------------------
@pytest.fixture
def cnn_pt2(tmp_path):
    model = _randomise_bn(_CNN()).eval()
    ep = torch.export.export(model, (torch.randn(2, 3, 16, 16),))
    path = tmp_path / "cnn.pt2"
    torch.export.save(ep, path)
    return model, path


def test_pt2_round_trip_matches_torch(cnn_pt2):
    model, path = cnn_pt2
    graph = load_pt2(path)
    x = torch.randn(7, 3, 16, 16)
    np.testing.assert_allclose(evaluate(graph, x.numpy())[graph.outputs[0]], _reference(model, x), atol=ATOL)
    assert "features.0" in graph.nodes and graph.meta["source"]["file"] == str(path)
    assert graph.name == "cnn"
    assert _kinds(load_model(path)) == _kinds(graph)


def test_pt2_with_dynamic_batch_loads(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3)).eval()
    batch = torch.export.Dim("batch")
    ep = torch.export.export(model, (torch.randn(4, 1, 6, 6),), dynamic_shapes=({0: batch},))
    torch.export.save(ep, tmp_path / "dyn.pt2")
    graph = load_pt2(tmp_path / "dyn.pt2")
    x = torch.randn(9, 1, 6, 6)
    np.testing.assert_allclose(evaluate(graph, x.numpy())["3"], _reference(model, x), atol=ATOL)


class _Evil:
    """Unpickling this creates ``marker`` (a harmless stand-in for arbitrary code)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil_torch_payload(marker: Path) -> bytes:
    buffer = io.BytesIO()
    torch.save(_Evil(marker), buffer)
    return buffer.getvalue()


def _rewrite(src: Path, dst: Path, changes: dict[str, bytes | None]) -> Path:
    """Copy a .pt2 archive, replacing (bytes), adding, or deleting (None) entries by their path
    below the archive root."""
    with zipfile.ZipFile(src) as zin:
        root = zin.namelist()[0].split("/", 1)[0]
        entries = {n.split("/", 1)[1]: zin.read(n) for n in zin.namelist()}
    for rel, blob in changes.items():
        if blob is None:
            entries.pop(rel, None)
        else:
            entries[rel] = blob
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for rel, blob in entries.items():
            zout.writestr(f"{root}/{rel}", blob)
    return dst


def test_evil_payload_is_live(tmp_path):
    """Control: the payload used below really runs when unpickled the way torch would."""
    marker = tmp_path / "control"
    torch.load(io.BytesIO(_evil_torch_payload(marker)), weights_only=False)
    assert marker.exists()


def test_pt2_example_inputs_are_never_unpickled(cnn_pt2, tmp_path):
    # torch.export.load would retry this pickle with weights_only=False and run it.
    model, path = cnn_pt2
    marker = tmp_path / "pwned_by_sample_inputs"
    evil = _rewrite(path, tmp_path / "evil.pt2", {"data/sample_inputs/model.pt": _evil_torch_payload(marker)})
    graph = load_pt2(evil)
    assert not marker.exists()
    x = torch.randn(3, 3, 16, 16)
    np.testing.assert_allclose(evaluate(graph, x.numpy())[graph.outputs[0]], _reference(model, x), atol=ATOL)


def test_pt2_with_pickled_weight_is_refused(cnn_pt2, tmp_path):
    _, path = cnn_pt2
    marker = tmp_path / "pwned_by_weight"
    with zipfile.ZipFile(path) as z:
        root = z.namelist()[0].split("/", 1)[0]
        config = json.loads(z.read(f"{root}/data/weights/model_weights_config.json"))
    fqn, meta = next(iter(config["config"].items()))
    meta["use_pickle"] = True
    evil = _rewrite(path, tmp_path / "evil.pt2", {
        "data/weights/model_weights_config.json": json.dumps(config).encode(),
        f"data/weights/{meta['path_name']}": _evil_torch_payload(marker),
    })
    with pytest.raises(InvalidModel) as info:
        load_pt2(evil)
    assert not marker.exists()
    text = str(info.value)
    assert str(evil) in text and "pickle" in text and fqn in text and "\n" not in text


@pytest.mark.parametrize(
    "entry, config_entry",
    [
        ("data/constants/custom_obj_0", True),  # torchbind object: torch._C._pickle_load_obj
        ("data/constants/opaque_obj_0", True),  # opaque object: pickle.loads
        ("data/weights/model.pt", False),  # legacy weights: torch.load(weights_only=False)
        ("data/aotinductor/model/model.so", False),  # compiled code: dlopen
    ],
)
def test_pt2_with_pickled_or_compiled_entries_is_refused(cnn_pt2, tmp_path, entry, config_entry):
    _, path = cnn_pt2
    marker = tmp_path / "pwned"
    changes: dict[str, bytes | None] = {entry: pickle.dumps(_Evil(marker))}
    if config_entry:
        config = {"config": {"obj": {"path_name": entry.rsplit("/", 1)[1], "is_param": False, "use_pickle": True, "tensor_meta": None}}}
        changes["data/constants/model_constants_config.json"] = json.dumps(config).encode()
    evil = _rewrite(path, tmp_path / "evil.pt2", changes)
    with pytest.raises(InvalidModel, match="refuse|pickle"):
        load_pt2(evil)
    assert not marker.exists()


def test_pt2_with_code_in_a_shape_expression_is_refused(tmp_path):
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2)).eval()
    ep = torch.export.export(model, (torch.randn(3, 2, 2),), dynamic_shapes=({0: torch.export.Dim("b")},))
    path = tmp_path / "dyn.pt2"
    torch.export.save(ep, path)
    marker = tmp_path / "pwned_by_sympify"
    with zipfile.ZipFile(path) as z:
        root = z.namelist()[0].split("/", 1)[0]
        program = z.read(f"{root}/models/model.json").decode()
    assert '"expr_str": "Symbol(' in program
    injected = program.replace('"expr_str": "Symbol(', f'"expr_str": "open(\'{marker}\', \'w\') and Symbol(', 1)
    evil = _rewrite(path, tmp_path / "evil.pt2", {"models/model.json": injected.encode()})
    with pytest.raises(InvalidModel, match="expression"):
        load_pt2(evil)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content",
    [b"", b"this is a text file, not a model\n", b"PK\x03\x04truncated", "truncate"],
    ids=["empty", "text", "zip-header-only", "truncated"],
)
def test_unreadable_pt2_files_are_invalid_model(cnn_pt2, tmp_path, content):
    _, good = cnn_pt2
    if content == "truncate":
        data = good.read_bytes()
        content = data[: len(data) // 2]
    path = tmp_path / "bad.pt2"
    path.write_bytes(content)
    with pytest.raises(InvalidModel) as info:
        load_pt2(path)
    text = str(info.value)
    assert text.startswith(str(path)) and "\n" not in text


def test_missing_pt2_file_is_invalid_model(tmp_path):
    with pytest.raises(InvalidModel, match="no such file|cannot read"):
        load_pt2(tmp_path / "missing.pt2")
