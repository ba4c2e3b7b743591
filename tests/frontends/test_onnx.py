"""snc.frontends.onnx: ONNX models in, ANN graphs out that compute what onnxruntime computes.

Every numeric test builds a model, runs it in onnxruntime (the independent reference) and in
``backends.analog.evaluate`` on the converted graph, and compares the outputs.
"""
from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from backends.analog import evaluate
from snc.errors import InvalidModel, ShapeError, SncError, UnsupportedOperator
from snc.frontends.onnx import SUPPORTED_OPS, from_onnx
from tests.conftest import CORPUS, corpus_path
from tests.corpus_data import load_cifar10_eran100, load_iris, load_mnist_test

import onnxruntime as ort  # noqa: E402  (a test dependency: fail, never skip, without it)

RTOL = ATOL = 1e-5


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def tinfo(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def make_model(nodes, inputs, outputs, inits=None, opset=13) -> onnx.ModelProto:
    """A model of ``nodes``; ``inputs``/``outputs`` are (name, shape) pairs, ``inits`` name -> array."""
    inits = inits or {}
    graph = helper.make_graph(
        nodes,
        "test",
        [tinfo(n, s) for n, s in inputs],
        [tinfo(n, s) for n, s in outputs],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = max(4, helper.find_min_ir_version_for([helper.make_opsetid("", opset)]))
    return model


def ort_run(model: onnx.ModelProto, x: np.ndarray) -> list[np.ndarray]:
    """onnxruntime's outputs for samples ``x``; one sample at a time if the batch is fixed to 1."""
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    if inp.shape[0] == 1:
        runs = [sess.run(None, {inp.name: x[i:i + 1]}) for i in range(len(x))]
        return [np.concatenate([r[k] for r in runs]) for k in range(len(runs[0]))]
    return sess.run(None, {inp.name: x})


def assert_matches(model: onnx.ModelProto, x: np.ndarray, rtol=RTOL, atol=ATOL):
    """Convert ``model`` and check every output against onnxruntime; returns the graph."""
    graph = from_onnx(model)
    ours = evaluate(graph, x)
    ref = ort_run(model, x)
    assert len(graph.outputs) == len(ref)
    for name, expected in zip(graph.outputs, ref):
        assert ours[name].shape == expected.shape, name
        np.testing.assert_allclose(ours[name], expected, rtol=rtol, atol=atol)
    return graph


#: x -> r; most models below start with it so that the graph holds an ANN node (see
#: test_purely_linear_model_with_bias for why).
RELU_FIRST = helper.make_node("Relu", ["x"], ["r"], name="pre")


def kinds(graph) -> list[str]:
    return [graph[n].kind for n in graph.topological_order()]


def rand(*shape, seed=0, scale=1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def raises_one_line(exc_type, fn, *parts: str) -> SncError:
    """``fn()`` raises ``exc_type`` whose str() is one line containing every string in ``parts``."""
    with pytest.raises(exc_type) as info:
        fn()
    text = str(info.value)
    assert "\n" not in text
    for part in parts:
        assert part in text, (part, text)
    return info.value


def conv_model(attrs, in_shape=(2, 7, 9), w_shape=(3, 2, 3, 3), bias=True, opset=13, seed=1):
    """x -> Relu -> Conv. (The Relu keeps the graph an ANN graph: see test_purely_linear_model_with_bias.)"""
    inits = {"W": rand(*w_shape, seed=seed)}
    names = ["r", "W"]
    if bias:
        inits["B"] = rand(w_shape[0], seed=seed + 1)
        names.append("B")
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="pre"),
        helper.make_node("Conv", names, ["y"], name="conv", **attrs),
    ]
    return make_model(nodes, [("x", ["N", *in_shape])], [("y", None)], inits, opset)


# ---------------------------------------------------------------------------------------------
# Conv
# ---------------------------------------------------------------------------------------------
CONV_CASES = {
    "default": ({}, (2, 7, 9), (3, 2, 3, 3)),
    "symmetric pads": ({"pads": [1, 1, 1, 1]}, (2, 7, 9), (3, 2, 3, 3)),
    "asymmetric pads and strides": ({"pads": [0, 1, 2, 1], "strides": [2, 1]}, (2, 7, 9), (3, 2, 3, 3)),
    "dilation": ({"dilations": [2, 2], "pads": [2, 1, 2, 1]}, (2, 9, 9), (3, 2, 3, 3)),
    "groups": ({"group": 2, "pads": [1, 1, 1, 1]}, (4, 6, 6), (6, 2, 3, 3)),
    "depthwise": ({"group": 4}, (4, 6, 6), (4, 1, 3, 3)),
    "SAME_UPPER": ({"auto_pad": "SAME_UPPER", "strides": [2, 2]}, (2, 9, 10), (3, 2, 4, 3)),
    "SAME_LOWER": ({"auto_pad": "SAME_LOWER", "strides": [2, 1]}, (2, 9, 10), (3, 2, 4, 2)),
    "VALID": ({"auto_pad": "VALID", "strides": [2, 2]}, (2, 9, 10), (3, 2, 3, 3)),
    "kernel_shape given": ({"kernel_shape": [1, 3]}, (2, 5, 5), (3, 2, 1, 3)),
}


@pytest.mark.parametrize("case", list(CONV_CASES))
@pytest.mark.parametrize("opset", [7, 11, 13])
def test_conv_matches_onnxruntime(case, opset):
    attrs, in_shape, w_shape = CONV_CASES[case]
    graph = assert_matches(conv_model(attrs, in_shape, w_shape, opset=opset), rand(3, *in_shape, seed=5))
    assert kinds(graph) == ["Input", "ReLU", "Conv2d"]


def test_conv_without_bias_and_same_upper_resolves_to_asymmetric_pads():
    model = conv_model({"auto_pad": "SAME_UPPER"}, (2, 6, 6), (3, 2, 4, 4), bias=False)
    graph = assert_matches(model, rand(2, 2, 6, 6))
    conv = graph["conv"]
    assert conv.bias is None
    assert conv.padding == (1, 1, 2, 2)  # total 3: the extra one at the end (SAME_UPPER)


def test_purely_linear_model_with_bias():
    node = helper.make_node("Gemm", ["x", "W", "C"], ["y"], name="fc", transB=1)
    inits = {"W": rand(5, 6), "C": rand(5)}
    assert_matches(make_model([node], [("x", ["N", 6])], [("y", None)], inits, 11), rand(4, 6))


def test_conv1d_is_refused_with_a_reason():
    model = conv_model({}, in_shape=(2, 9), w_shape=(3, 2, 3))
    raises_one_line(UnsupportedOperator, lambda: from_onnx(model), "conv", "2-D convolutions")


# ---------------------------------------------------------------------------------------------
# Pooling
# ---------------------------------------------------------------------------------------------
def pool_model(op, attrs, in_shape=(3, 8, 9), opset=13, outputs=1):
    outs = ["y", "idx"][:outputs]
    node = helper.make_node(op, ["x"], outs, name="pool", **attrs)
    out_infos = [("y", None)] + ([("idx", None)] if outputs == 2 else [])
    model = make_model([node], [("x", ["N", *in_shape])], out_infos, opset=opset)
    if outputs == 2:
        model.graph.output[1].type.tensor_type.elem_type = TensorProto.INT64
    return model


@pytest.mark.parametrize(
    "attrs,opset",
    [
        ({"kernel_shape": [2, 2], "strides": [2, 2]}, 7),
        ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 0, 1, 1]}, 11),
        ({"kernel_shape": [3, 2], "strides": [1, 2], "pads": [1, 1, 1, 0]}, 13),
        ({"kernel_shape": [2, 2], "dilations": [2, 2]}, 12),
        ({"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER", "strides": [2, 2]}, 13),
        ({"kernel_shape": [2, 3], "strides": [2, 3], "ceil_mode": 1}, 13),  # 8/2, 9/3: ceil == floor
    ],
)
def test_maxpool_matches_onnxruntime(attrs, opset):
    graph = assert_matches(pool_model("MaxPool", attrs, opset=opset), rand(4, 3, 8, 9, seed=2))
    assert kinds(graph) == ["Input", "MaxPool2d"]


def test_maxpool_ceil_mode_that_changes_the_output_is_refused():
    model = pool_model("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1}, in_shape=(3, 7, 7))
    raises_one_line(UnsupportedOperator, lambda: from_onnx(model), "pool", "ceil_mode")


def test_maxpool_indices_output_must_be_unused():
    model = pool_model("MaxPool", {"kernel_shape": [2, 2]}, outputs=2)
    raises_one_line(UnsupportedOperator, lambda: from_onnx(model), "Indices")


@pytest.mark.parametrize("include", [0, 1])
@pytest.mark.parametrize(
    "attrs,opset",
    [
        ({"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, 7),
        ({"kernel_shape": [3, 2], "strides": [2, 1], "pads": [0, 1, 2, 0]}, 11),
        ({"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"}, 13),
        ({"kernel_shape": [4, 4], "strides": [4, 4]}, 13),
    ],
)
def test_averagepool_honours_count_include_pad(attrs, opset, include):
    graph = assert_matches(
        pool_model("AveragePool", {**attrs, "count_include_pad": include}, opset=opset), rand(4, 3, 8, 9, seed=3)
    )
    (pool,) = [graph[n] for n in graph.nodes if graph[n].kind == "AvgPool2d"]
    assert pool.count_include_pad == bool(include)


def test_pad_folds_into_global_average_pool():
    inits = {"pads": np.array([0, 0, 1, 0, 0, 0, 2, 3], np.int64)}
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["p"], name="pad"),
        helper.make_node("GlobalAveragePool", ["p"], ["y"], name="gap"),
    ]
    graph = assert_matches(make_model(nodes, [("x", ["N", 3, 4, 5])], [("y", None)], inits), rand(3, 3, 4, 5))
    assert graph["gap"].kernel == (7, 8) and graph["gap"].padding == (1, 0, 2, 3)


def test_global_average_and_max_pool():
    for op in ("GlobalAveragePool", "GlobalMaxPool"):
        graph = assert_matches(pool_model(op, {}), rand(3, 3, 8, 9, seed=4))
        pool = graph["pool"]
        assert pool.kernel == (8, 9) and pool.stride == (8, 9)


# ---------------------------------------------------------------------------------------------
# Pad folding
# ---------------------------------------------------------------------------------------------
def pad_then(op, op_attrs, pads4, opset, value=None, mode=None, w_shape=(3, 2, 3, 3), in_shape=(2, 7, 8)):
    """x -> Pad(H/W pads (top, left, bottom, right)) -> op."""
    t, l, b, r = pads4
    full = [0, 0, t, l, 0, 0, b, r]
    inits: dict[str, np.ndarray] = {}
    pad_attrs = {} if mode is None else {"mode": mode}
    if opset < 11:
        pad_attrs["pads"] = full
        if value is not None:
            pad_attrs["value"] = value
        pad = helper.make_node("Pad", ["x"], ["p"], name="pad", **pad_attrs)
    else:
        inits["pads"] = np.array(full, np.int64)
        ins = ["x", "pads"]
        if value is not None:
            inits["value"] = np.array(value, np.float32)
            ins.append("value")
        pad = helper.make_node("Pad", ins, ["p"], name="pad", **pad_attrs)
    ins = ["p"]
    if op == "Conv":
        inits["W"] = rand(*w_shape, seed=7)
        ins.append("W")
    nxt = helper.make_node(op, ins, ["y"], name="next", **op_attrs)
    return make_model([pad, nxt], [("x", ["N", *in_shape])], [("y", None)], inits, opset)


@pytest.mark.parametrize("opset", [7, 11, 13])
def test_pad_folds_into_conv(opset):
    model = pad_then("Conv", {"pads": [1, 0, 0, 1]}, (0, 1, 2, 0), opset)
    graph = assert_matches(model, rand(3, 2, 7, 8, seed=1))
    assert kinds(graph) == ["Input", "Conv2d"]
    assert graph["next"].padding == (1, 1, 2, 1)


def test_pad_with_axes_input_opset18_folds_into_conv():
    inits = {"W": rand(3, 2, 3, 3), "pads": np.array([1, 2, 0, 1], np.int64), "axes": np.array([-2, -1], np.int64)}
    pad = helper.make_node("Pad", ["x", "pads", "", "axes"], ["p"], name="pad")
    conv = helper.make_node("Conv", ["p", "W"], ["y"], name="conv")
    model = make_model([pad, conv], [("x", ["N", 2, 6, 6])], [("y", None)], inits, opset=18)
    graph = assert_matches(model, rand(2, 2, 6, 6))
    assert graph["conv"].padding == (1, 2, 0, 1)


def test_pad_folds_into_averagepool_without_padding_counting_the_zeros():
    # count_include_pad=0 on the pool, but the Pad's zeros are data: they count in the divisor.
    pool = {"kernel_shape": [3, 3], "strides": [2, 2], "count_include_pad": 0}
    model = pad_then("AveragePool", pool, (1, 1, 1, 1), 11)
    graph = assert_matches(model, rand(3, 2, 7, 8, seed=2))
    pool = graph["next"]
    assert pool.padding == (1, 1, 1, 1) and pool.count_include_pad is True
    assert any("Pad 'pad'" in note for note in graph.meta["notes"])


def test_pad_folds_into_averagepool_that_counts_its_own_padding():
    model = pad_then(
        "AveragePool", {"kernel_shape": [3, 3], "pads": [1, 0, 0, 1], "count_include_pad": 1}, (0, 1, 2, 0), 13
    )
    graph = assert_matches(model, rand(3, 2, 7, 8, seed=3))
    assert graph["next"].padding == (1, 1, 2, 1)


def test_pad_before_averagepool_excluding_its_own_padding_is_refused():
    model = pad_then(
        "AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 0}, (1, 0, 0, 0), 13
    )
    raises_one_line(UnsupportedOperator, lambda: from_onnx(model), "node 'next'", "count_include_pad=0", "'pad'")


def test_all_zero_pad_before_maxpool_is_an_identity():
    model = pad_then("MaxPool", {"kernel_shape": [2, 2], "strides": [2, 2]}, (0, 0, 0, 0), 9)
    graph = assert_matches(model, rand(3, 2, 7, 8))
    assert kinds(graph) == ["Input", "MaxPool2d"]


@pytest.mark.parametrize(
    "build,needle",
    [
        (lambda: pad_then("MaxPool", {"kernel_shape": [2, 2]}, (1, 0, 0, 0), 11), "MaxPool"),
        (lambda: pad_then("Conv", {}, (1, 1, 1, 1), 11, value=1.0), "value 1.0"),
        (lambda: pad_then("Conv", {}, (1, 1, 1, 1), 11, mode="reflect"), "reflect"),
        (lambda: pad_then("Relu", {}, (1, 1, 1, 1), 11), "Pad 'pad'"),
        (lambda: pad_then("Conv", {}, (1, 1, 1, 1), 7, value=0.5), "value 0.5"),
    ],
)
def test_pad_that_cannot_be_folded_is_refused(build, needle):
    raises_one_line(UnsupportedOperator, lambda: from_onnx(build()), needle)


def test_pad_on_the_channel_axis_is_refused():
    inits = {"pads": np.array([0, 1, 0, 0, 0, 0, 0, 0], np.int64), "W": rand(3, 3, 3, 3)}
    pad = helper.make_node("Pad", ["x", "pads"], ["p"], name="pad")
    conv = helper.make_node("Conv", ["p", "W"], ["y"])
    model = make_model([pad, conv], [("x", ["N", 2, 6, 6])], [("y", None)], inits, 13)
    raises_one_line(UnsupportedOperator, lambda: from_onnx(model), "node 'pad'", "H and W axes")


# ---------------------------------------------------------------------------------------------
# Gemm, MatMul, BatchNormalization
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("trans_b", [0, 1])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, 2.0), (1.5, 0.0)])
@pytest.mark.parametrize("c_shape", [(5,), (1, 5), ()])
def test_gemm_matches_onnxruntime(trans_b, alpha, beta, c_shape):
    w = rand(5, 6, seed=1) if trans_b else rand(6, 5, seed=1)
    inits = {"W": w, "C": rand(*c_shape, seed=2)}
    gemm = helper.make_node("Gemm", ["r", "W", "C"], ["y"], name="fc", alpha=alpha, beta=beta, transB=trans_b)
    nodes = [RELU_FIRST, gemm]
    graph = assert_matches(make_model(nodes, [("x", ["N", 6])], [("y", None)], inits, 11), rand(4, 6))
    assert kinds(graph) == ["Input", "ReLU", "Dense"]


def test_gemm_without_c_opset11_and_opset7():
    node = helper.make_node("Gemm", ["x", "W"], ["y"], name="fc", transB=1)
    graph = assert_matches(make_model([node], [("x", ["N", 6])], [("y", None)], {"W": rand(5, 6)}, 11), rand(4, 6))
    assert graph["fc"].bias is None
    nodes = [RELU_FIRST, helper.make_node("Gemm", ["r", "W", "C"], ["y"], name="fc", transB=1)]
    assert_matches(make_model(nodes, [("x", ["N", 6])], [("y", None)], {"W": rand(5, 6), "C": rand(5)}, 7), rand(4, 6))


def test_gemm_with_transa_is_refused():
    node = helper.make_node("Gemm", ["x", "W"], ["y"], name="fc", transA=1)
    model = make_model([node], [("x", [1, 6])], [("y", None)], {"W": rand(1, 5)}, 11)
    raises_one_line(UnsupportedOperator, lambda: from_onnx(model), "node 'fc'", "transA")


def test_matmul_followed_by_add_becomes_one_dense_with_bias():
    inits = {"W": rand(6, 4, seed=1), "b": rand(4, seed=2)}
    nodes = [
        RELU_FIRST,
        helper.make_node("MatMul", ["r", "W"], ["h"], name="mm"),
        helper.make_node("Add", ["h", "b"], ["y"], name="add"),
    ]
    graph = assert_matches(make_model(nodes, [("x", ["N", 6])], [("y", None)], inits), rand(5, 6))
    assert kinds(graph) == ["Input", "ReLU", "Dense"]
    np.testing.assert_allclose(graph["mm"].bias, inits["b"])


def test_matmul_add_keeps_the_matmul_output_when_it_is_used_elsewhere():
    inits = {"W": rand(6, 4, seed=1), "b": rand(1, 4, seed=2)}
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
        helper.make_node("Add", ["b", "h"], ["y"], name="add"),
    ]
    model = make_model(nodes, [("x", ["N", 6])], [("y", None), ("h", None)], inits)
    graph = assert_matches(model, rand(5, 6))
    assert graph["mm"].bias is None


def test_matmul_with_a_non_constant_right_operand_is_refused():
    nodes = [helper.make_node("MatMul", ["x", "x"], ["y"], name="mm")]
    model = make_model(nodes, [("x", ["N", 6, 6])], [("y", None)])
    raises_one_line(UnsupportedOperator, lambda: from_onnx(model), "node 'mm'", "constant right operand")


@pytest.mark.parametrize("opset", [7, 9, 15])
def test_batchnorm_after_conv_and_after_gemm(opset):
    c = 3
    inits = {
        "W": rand(c, 2, 3, 3, seed=1), "g": rand(c, seed=2), "b": rand(c, seed=3), "m": rand(c, seed=4),
        "v": np.abs(rand(c, seed=5)) + 0.5, "W2": rand(4, c * 4 * 4, seed=6), "c2": np.zeros(4, np.float32),
        "g2": rand(4, seed=7), "b2": rand(4, seed=8), "m2": rand(4, seed=9), "v2": np.abs(rand(4, seed=10)) + 0.1,
    }
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], name="conv"),
        helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["bn"], name="bn", epsilon=1e-3),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "W2", "c2"], ["h"], transB=1),
        helper.make_node("BatchNormalization", ["h", "g2", "b2", "m2", "v2"], ["y"], name="bn2"),
    ]
    graph = assert_matches(make_model(nodes, [("x", ["N", 2, 6, 6])], [("y", None)], inits, opset), rand(4, 2, 6, 6))
    assert graph["bn"].kind == "BatchNorm" and graph["bn"].eps == pytest.approx(1e-3)
    assert graph["bn2"].kind == "BatchNorm"


def test_batchnorm_with_per_activation_statistics_opset7_spatial0():
    inits = {k: np.abs(rand(3, 4, 5, seed=i)) + 0.5 for i, k in enumerate("gbmv")}
    nodes = [RELU_FIRST, helper.make_node("BatchNormalization", ["r", "g", "b", "m", "v"], ["y"], name="bn", spatial=0)]
    graph = assert_matches(make_model(nodes, [("x", ["N", 3, 4, 5])], [("y", None)], inits, 7), rand(4, 3, 4, 5))
    assert graph["bn"].kind == "ScaleShift"


# ---------------------------------------------------------------------------------------------
# Activations and elementwise constants
# ---------------------------------------------------------------------------------------------
def test_relu():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["N", 3, 4])], [("y", None)])
    assert kinds(assert_matches(model, rand(5, 3, 4))) == ["Input", "ReLU"]


@pytest.mark.parametrize("opset", [7, 11, 13])
def test_clip_zero_six_is_relu6(opset):
    if opset < 11:
        node = helper.make_node("Clip", ["x"], ["y"], name="clip", min=0.0, max=6.0)
        inits = {}
    else:
        node = helper.make_node("Clip", ["x", "lo", "hi"], ["y"], name="clip")
        inits = {"lo": np.array(0.0, np.float32), "hi": np.array(6.0, np.float32)}
    graph = assert_matches(make_model([node], [("x", ["N", 10])], [("y", None)], inits, opset), rand(6, 10, scale=8))
    assert graph["clip"].kind == "ReLU" and graph["clip"].ceiling == 6.0


@pytest.mark.parametrize("opset", [9, 13])
def test_clip_with_min_zero_only_is_relu(opset):
    if opset < 11:
        node = helper.make_node("Clip", ["x"], ["y"], name="clip", min=0.0)
        inits = {}
    else:
        node = helper.make_node("Clip", ["x", "lo"], ["y"], name="clip")
        inits = {"lo": np.array(0.0, np.float32)}
    graph = assert_matches(make_model([node], [("x", ["N", 10])], [("y", None)], inits, opset), rand(6, 10, scale=8))
    assert graph["clip"].ceiling is None


def test_clip_without_bounds_is_an_identity():
    model = make_model(
        [helper.make_node("Clip", ["x"], ["c"]), helper.make_node("Relu", ["c"], ["y"])],
        [("x", ["N", 10])], [("y", None)], opset=13,
    )
    assert kinds(assert_matches(model, rand(3, 10))) == ["Input", "ReLU"]


@pytest.mark.parametrize(
    "lo,hi,needle",
    [(None, 6.0, "only an upper bound"), (-1.0, 1.0, "min=-1.0"), (0.0, 0.0, "ceiling must be > 0")],
)
def test_clip_that_is_not_a_rectifier_is_refused(lo, hi, needle):
    inits = {}
    names = ["x", "", ""]
    if lo is not None:
        inits["lo"], names[1] = np.array(lo, np.float32), "lo"
    if hi is not None:
        inits["hi"], names[2] = np.array(hi, np.float32), "hi"
    node = helper.make_node("Clip", names, ["y"], name="clip")
    model = make_model([node], [("x", ["N", 4])], [("y", None)], inits, 13)
    raises_one_line(UnsupportedOperator, lambda: from_onnx(model), "node 'clip'", needle)


def test_normalisation_by_sub_and_div_constants_is_one_scaleshift():
    mean = np.array([0.5, 0.4, 0.3], np.float32).reshape(1, 3, 1, 1)
    std = np.array([0.2, 0.25, 0.3], np.float32).reshape(1, 3, 1, 1)
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["s"], name="sub"),
        helper.make_node("Div", ["s", "std"], ["d"], name="div"),
        helper.make_node("Conv", ["d", "W"], ["y"], name="conv"),
    ]
    inits = {"mean": mean, "std": std, "W": rand(2, 3, 3, 3)}
    graph = assert_matches(make_model(nodes, [("x", ["N", 3, 8, 8])], [("y", None)], inits), rand(4, 3, 8, 8))
    assert kinds(graph) == ["Input", "ScaleShift", "Conv2d"]


@pytest.mark.parametrize(
    "op,const_first,const",
    [
        ("Sub", True, np.float32(2.0)),  # c - x
        ("Mul", False, np.float32(3.0)),
        ("Mul", True, rand(3, 1, 1, seed=3)),  # per channel, without the batch axis
        ("Add", False, rand(3, 4, 5, seed=4)),  # full sample shape
        ("Div", False, rand(1, 1, 4, 5, seed=5) + 3.0),
        ("Sub", False, rand(1, 3, 1, 1, seed=6)),
    ],
)
def test_elementwise_constants_become_scaleshift(op, const_first, const):
    ins = ["c", "x"] if const_first else ["x", "c"]
    nodes = [helper.make_node("Relu", ["x0"], ["x"]), helper.make_node(op, ins, ["y"], name="op")]
    model = make_model(nodes, [("x0", ["N", 3, 4, 5])], [("y", None)], {"c": np.asarray(const)})
    graph = assert_matches(model, rand(3, 3, 4, 5))
    assert graph["op"].kind == "ScaleShift"


def test_constant_that_would_broadcast_the_tensor_is_refused():
    nodes = [helper.make_node("Add", ["x", "c"], ["y"], name="add")]
    model = make_model(nodes, [("x", ["N", 3, 1])], [("y", None)], {"c": rand(3, 4)})
    raises_one_line(UnsupportedOperator, lambda: from_onnx(model), "node 'add'", "broadcast")


def test_add_after_conv_folds_per_channel_constant_into_its_bias():
    nodes = [
        RELU_FIRST,
        helper.make_node("Conv", ["r", "W"], ["c"], name="conv"),
        helper.make_node("Add", ["c", "b"], ["y"]),
    ]
    inits = {"W": rand(4, 2, 3, 3), "b": rand(1, 4, 1, 1, seed=9)}
    graph = assert_matches(make_model(nodes, [("x", ["N", 2, 6, 6])], [("y", None)], inits), rand(3, 2, 6, 6))
    assert kinds(graph) == ["Input", "ReLU", "Conv2d"]


def test_residual_add_sub_and_doubling():
    inits = {"W1": rand(3, 3, 3, 3, seed=1), "W2": rand(3, 3, 3, 3, seed=2)}
    nodes = [
        helper.make_node("Conv", ["x", "W1"], ["a"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["ar"]),
        helper.make_node("Conv", ["ar", "W2"], ["b"], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["b", "x"], ["res"], name="res"),  # residual join with the input
        helper.make_node("Sub", ["res", "ar"], ["diff"], name="diff"),
        helper.make_node("Add", ["diff", "diff"], ["y"], name="double"),
    ]
    graph = assert_matches(make_model(nodes, [("x", ["N", 3, 5, 5])], [("y", None)], inits), rand(4, 3, 5, 5))
    assert graph["res"].kind == "Add" and set(graph.inputs_of("res")) == {"b", "x"}


def test_sum_of_activations_with_a_repeated_operand():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"]),
        helper.make_node("Neg", ["x"], ["b"]),
        helper.make_node("Sum", ["a", "b", "a"], ["y"], name="sum"),
    ]
    graph = assert_matches(make_model(nodes, [("x", ["N", 4, 2])], [("y", None)]), rand(3, 4, 2))
    assert graph["sum"].kind == "Add"


def test_constant_nodes_cast_and_constant_weight_preprocessing_are_folded():
    w = rand(3, 4, seed=2)
    nodes = [
        helper.make_node("Constant", [], ["wt"], value=numpy_helper.from_array(w)),
        helper.make_node("Transpose", ["wt"], ["w"], perm=[1, 0]),  # constant-only: evaluated at load time
        helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Relu", ["xf"], ["r"]),
        helper.make_node("MatMul", ["r", "w"], ["y"], name="mm"),
    ]
    graph = assert_matches(make_model(nodes, [("x", ["N", 4])], [("y", None)]), rand(5, 4))
    assert kinds(graph) == ["Input", "ReLU", "Dense"]
    np.testing.assert_array_equal(graph["mm"].weight, w)


def test_mul_of_two_activations_is_refused():
    model = make_model([helper.make_node("Mul", ["x", "x"], ["y"], name="sq")], [("x", ["N", 4])], [("y", None)])
    raises_one_line(UnsupportedOperator, lambda: from_onnx(model), "node 'sq'", "not linear")


# ---------------------------------------------------------------------------------------------
# Shapes: Flatten, Reshape, Transpose, Concat, Squeeze/Unsqueeze
# ---------------------------------------------------------------------------------------------
def test_odd_input_shape_784_by_1():
    inits = {"W": rand(10, 784, scale=0.05), "b": rand(10)}
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "W", "b"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["y"]),
    ]
    graph = assert_matches(make_model(nodes, [("x", [1, 784, 1])], [("y", [1, 10])], inits, 9), rand(3, 784, 1))
    assert graph[graph.input_names[0]].shape == (784, 1)


@pytest.mark.parametrize("axis", [1, 2, -2, 3])
def test_flatten_keeping_the_batch(axis):
    # ONNX Flatten gives (N * prod(axes 1..axis-1), prod(rest)): here the merged axes have size 1.
    node = helper.make_node("Flatten", ["x"], ["y"], axis=axis)
    model = make_model([node], [("x", ["N", 1, 1, 3, 4])], [("y", None)])
    graph = assert_matches(model, rand(2, 1, 1, 3, 4))
    assert kinds(graph) == ["Input", "Flatten"]


def test_flatten_that_merges_axes_into_the_batch_is_refused():
    nodes = [helper.make_node("Flatten", ["x"], ["y"], axis=2, name="flat")]
    model = make_model(nodes, [("x", ["N", 2, 3, 4])], [("y", None)])
    raises_one_line(UnsupportedOperator, lambda: from_onnx(model), "node 'flat'", "batch")


def test_flatten_axis0_needs_a_fixed_batch_of_one():
    nodes = [helper.make_node("Flatten", ["x"], ["y"], axis=0, name="flat")]
    assert_matches(make_model(nodes, [("x", [1, 2, 3])], [("y", None)]), rand(2, 2, 3))
    model = make_model(nodes, [("x", ["N", 2, 3])], [("y", None)])
    raises_one_line(UnsupportedOperator, lambda: from_onnx(model), "node 'flat'", "batch")


@pytest.mark.parametrize("target", [[0, -1], [-1, 12], [1, -1], [0, 2, 0, -1], [-1, 2, 2, 3], [1, 4, 3]])
def test_reshape_keeps_the_batch(target):
    nodes = [helper.make_node("Reshape", ["x", "s"], ["y"])]
    model = make_model(nodes, [("x", [1, 4, 3])], [("y", None)], {"s": np.array(target, np.int64)})
    assert_matches(model, rand(3, 4, 3))


def test_reshape_that_merges_the_batch_is_refused():
    nodes = [helper.make_node("Reshape", ["x", "s"], ["y"], name="rs")]
    model = make_model(nodes, [("x", ["N", 4, 3])], [("y", None)], {"s": np.array([-1], np.int64)})
    raises_one_line(UnsupportedOperator, lambda: from_onnx(model), "node 'rs'", "batch")


@pytest.mark.parametrize("opset", [11, 13])
def test_shape_subgraph_reshape(opset):
    """Shape -> Gather -> Unsqueeze -> Concat feeding Reshape (torch's x.view(x.size(0), -1))."""
    if opset < 13:
        unsq = helper.make_node("Unsqueeze", ["n"], ["n1"], axes=[0])
    else:
        unsq = helper.make_node("Unsqueeze", ["n", "zero_axis"], ["n1"])
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], name="conv"),
        helper.make_node("Shape", ["c"], ["shp"]),
        helper.make_node("Gather", ["shp", "idx0"], ["n"], axis=0),
        unsq,
        helper.make_node("Concat", ["n1", "minus1"], ["target"], axis=0),
        helper.make_node("Reshape", ["c", "target"], ["flat"], name="reshape"),
        helper.make_node("Gemm", ["flat", "W2"], ["y"], transB=1),
    ]
    inits = {
        "W": rand(3, 2, 3, 3), "idx0": np.array(0, np.int64), "minus1": np.array([-1], np.int64),
        "zero_axis": np.array([0], np.int64), "W2": rand(5, 3 * 4 * 4),
    }
    graph = assert_matches(make_model(nodes, [("x", ["N", 2, 6, 6])], [("y", None)], inits, opset), rand(4, 2, 6, 6))
    assert kinds(graph) == ["Input", "Conv2d", "Flatten", "Dense"]


def test_shape_subgraph_with_slice_cast_and_constant_of_shape():
    nodes = [
        helper.make_node("Shape", ["x"], ["shp"]),
        helper.make_node("Slice", ["shp", "s0", "s1"], ["head"]),  # [N]
        helper.make_node("Cast", ["head"], ["head64"], to=TensorProto.INT64),
        helper.make_node("ConstantOfShape", ["one"], ["m"], value=numpy_helper.from_array(np.array([-1], np.int64))),
        helper.make_node("Concat", ["head64", "m"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = {"s0": np.array([0], np.int64), "s1": np.array([1], np.int64), "one": np.array([1], np.int64)}
    graph = assert_matches(make_model(nodes, [("x", ["N", 2, 3])], [("y", None)], inits), rand(3, 2, 3))
    assert kinds(graph) == ["Input", "Flatten"]
    assert any("constants" in note for note in graph.meta["notes"])


def test_nhwc_input_transposed_to_nchw_before_conv():
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["t", "W"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Transpose", ["r"], ["y"], perm=[0, 2, 3, 1]),
    ]
    model = make_model(nodes, [("x", [1, 28, 28, 1])], [("y", None)], {"W": rand(4, 1, 3, 3)})
    graph = assert_matches(model, rand(3, 28, 28, 1))
    assert kinds(graph) == ["Input", "Transpose", "Conv2d", "ReLU", "Transpose"]


def test_transpose_of_the_batch_axis_is_refused():
    model = make_model(
        [helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0, 2], name="tr")], [("x", ["N", 2, 3])], [("y", None)]
    )
    raises_one_line(UnsupportedOperator, lambda: from_onnx(model), "node 'tr'", "perm[0]")


@pytest.mark.parametrize("axis", [1, -3])
def test_concat_of_branches(axis):
    nodes = [
        helper.make_node("Conv", ["x", "W1"], ["a"]),
        helper.make_node("Conv", ["x", "W2"], ["b"]),
        helper.make_node("Concat", ["a", "b", "a"], ["y"], axis=axis, name="cat"),
    ]
    inits = {"W1": rand(2, 3, 3, 3, seed=1), "W2": rand(4, 3, 3, 3, seed=2)}
    graph = assert_matches(make_model(nodes, [("x", ["N", 3, 6, 6])], [("y", None)], inits), rand(2, 3, 6, 6))
    assert graph["cat"].axis == 0


def test_concat_along_the_batch_is_refused():
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Concat", ["x", "a"], ["y"], axis=0, name="cat")]
    model = make_model(nodes, [("x", ["N", 3])], [("y", None)])
    raises_one_line(UnsupportedOperator, lambda: from_onnx(model), "node 'cat'", "batch")


@pytest.mark.parametrize("opset", [7, 11, 13])
def test_squeeze_and_unsqueeze(opset):
    if opset < 13:
        sq = helper.make_node("Squeeze", ["r"], ["s"], axes=[2])
        unsq = helper.make_node("Unsqueeze", ["s"], ["y"], axes=[4, 1] if opset < 11 else [-1, 1])
        inits = {}
    else:
        sq = helper.make_node("Squeeze", ["r", "ax"], ["s"])
        unsq = helper.make_node("Unsqueeze", ["s", "ax2"], ["y"])
        inits = {"ax": np.array([2], np.int64), "ax2": np.array([-1, 1], np.int64)}
    nodes = [helper.make_node("Relu", ["x"], ["r"]), sq, unsq]
    assert_matches(make_model(nodes, [("x", ["N", 4, 1, 3])], [("y", None)], inits, opset), rand(3, 4, 1, 3))


def test_squeeze_of_the_batch_axis_is_refused():
    nodes = [helper.make_node("Squeeze", ["x"], ["y"], axes=[0], name="sq")]
    model = make_model(nodes, [("x", [1, 4])], [("y", None)], opset=11)
    raises_one_line(UnsupportedOperator, lambda: from_onnx(model), "node 'sq'", "batch")


@pytest.mark.parametrize("opset", [7, 13])
def test_identity_and_dropout_are_bypassed(opset):
    nodes = [
        helper.make_node("Identity", ["x"], ["i"]),
        helper.make_node("Dropout", ["i"], ["d"], name="drop"),
        helper.make_node("Relu", ["d"], ["y"]),
    ]
    graph = assert_matches(make_model(nodes, [("x", ["N", 5])], [("y", None)], opset=opset), rand(3, 5))
    assert kinds(graph) == ["Input", "ReLU"]


# ---------------------------------------------------------------------------------------------
# Softmax, outputs, names, dead code
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("opset", [11, 13])
def test_trailing_softmax_is_dropped_with_a_note(opset):
    nodes = [
        helper.make_node("Gemm", ["x", "W"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], name="sm"),
    ]
    model = make_model(nodes, [("x", ["N", 6])], [("y", None)], {"W": rand(4, 6)}, opset)
    graph = from_onnx(model)
    x = rand(50, 6, seed=11)
    ours = evaluate(graph, x)[graph.outputs[0]]
    ref = ort_run(model, x)[0]
    np.testing.assert_array_equal(ours.argmax(1), ref.argmax(1))
    assert "dropped trailing Softmax 'sm' (argmax is unchanged)" in graph.meta["notes"]
    assert kinds(graph) == ["Input", "Dense"]


def test_softmax_inside_the_network_is_refused():
    nodes = [helper.make_node("Softmax", ["x"], ["s"], name="sm"), helper.make_node("Relu", ["s"], ["y"])]
    model = make_model(nodes, [("x", ["N", 6])], [("y", None)])
    raises_one_line(UnsupportedOperator, lambda: from_onnx(model), "node 'sm'", "Softmax")


def test_node_names_duplicates_and_odd_characters():
    odd = 'conv/1:0 "ü" \\ ;DROP'
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], name=odd),
        helper.make_node("Relu", ["c"], ["r1"], name="dup"),
        helper.make_node("Relu", ["r1"], ["r2"], name="dup"),
        helper.make_node("Flatten", ["r2"], ["y"], name=""),
    ]
    model = make_model(nodes, [("x", ["N", 1, 4, 4])], [("y", None)], {"W": rand(2, 1, 3, 3)})
    graph = from_onnx(model)  # (onnxruntime refuses duplicate node names; ONNX itself allows them)
    assert set(graph.nodes) == {"x", odd, "r1", "r2", "y"}
    assert graph.outputs == ["y"]
    assert kinds(graph) == ["Input", "Conv2d", "ReLU", "ReLU", "Flatten"]


def test_meta_source_and_two_outputs():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r"), helper.make_node("Neg", ["a"], ["b"], name="n")]
    model = make_model(nodes, [("x", ["N", 3])], [("b", None), ("a", None)], opset=11)
    graph = assert_matches(model, rand(4, 3))
    assert graph.outputs == ["n", "r"]
    assert graph.meta["source"] == {"format": "onnx", "file": None, "opset": 11}


def test_nodes_that_reach_no_output_are_ignored_with_a_note():
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Sigmoid", ["x"], ["unused"])]
    graph = assert_matches(make_model(nodes, [("x", ["N", 3])], [("y", None)]), rand(2, 3))
    assert "ignored 1 node(s) whose outputs reach no graph output" in graph.meta["notes"]


def test_graph_inputs_no_output_depends_on_are_ignored_with_a_note():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["N", 3]), ("unused", ["N", 2])], [("y", None)])
    graph = from_onnx(model)
    assert graph.input_names == ["x"]
    assert "ignored graph input 'unused', which no output depends on" in graph.meta["notes"]


def test_model_as_bytes_or_proto_or_path(tmp_path):
    model = conv_model({})
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    for source, file in ((path, str(path)), (model.SerializeToString(), None), (model, None)):
        graph = from_onnx(source)
        assert graph.meta["source"]["file"] == file
    assert from_onnx(model, file="named.onnx").meta["source"]["file"] == "named.onnx"


# ---------------------------------------------------------------------------------------------
# Bad input: typed, one-line errors naming the file (and node)
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def valid_model_bytes() -> bytes:
    inits = {"W": rand(16, 3, 3, 3), "W2": rand(10, 16 * 6 * 6)}
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("Gemm", ["f", "W2"], ["y"], transB=1),
    ]
    return make_model(nodes, [("x", ["N", 3, 8, 8])], [("y", None)], inits).SerializeToString()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(lambda good: good[: len(good) // 2], id="truncated"),
        pytest.param(lambda good: b"", id="empty"),
        pytest.param(lambda good: b"This is a text file, not a model.\nsecond line\n", id="text"),
        pytest.param(lambda good: b"hello world\n", id="short-text"),
        pytest.param(lambda good: bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), id="garbage"),
    ],
)
def test_unreadable_files_raise_invalid_model_naming_the_file(tmp_path, valid_model_bytes, content):
    path = tmp_path / "bad model.onnx"
    path.write_bytes(content(valid_model_bytes))
    raises_one_line(InvalidModel, lambda: from_onnx(path), str(path))


def test_missing_file(tmp_path):
    raises_one_line(InvalidModel, lambda: from_onnx(tmp_path / "none.onnx"), "none.onnx", "no such file")


@pytest.mark.parametrize("op", ["Sigmoid", "LSTM"])
def test_unsupported_operator_names_node_type_and_supported_ops(tmp_path, op):
    if op == "LSTM":
        node = helper.make_node("LSTM", ["x", "W", "R"], ["y"], name="rnn", hidden_size=2)
        inits = {"W": rand(1, 8, 3), "R": rand(1, 8, 2)}
        model = make_model([node], [("x", [5, 2, 3])], [("y", None)], inits)
        name = "rnn"
    else:
        nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Sigmoid", ["r"], ["y"])]
        model = make_model(nodes, [("x", ["N", 3])], [("y", None)])
        name = "y"  # an unnamed node is named by its first output
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    exc = raises_one_line(
        UnsupportedOperator, lambda: from_onnx(path), str(path), f"node '{name}'", repr(op), ", ".join(SUPPORTED_OPS)
    )
    assert exc.node == name and exc.file == str(path)


def test_nan_weights_raise_a_typed_error_naming_node_and_file(tmp_path):
    w = rand(5, 6)
    w[2, 3] = np.nan
    node = helper.make_node("Gemm", ["x", "W"], ["y"], name="fc", transB=1)
    path = tmp_path / "nan.onnx"
    onnx.save(make_model([node], [("x", ["N", 6])], [("y", None)], {"W": w}), str(path))
    raises_one_line(SncError, lambda: from_onnx(path), str(path), "node 'fc'", "non-finite")


def test_external_data_is_refused_without_opening_the_named_path(tmp_path):
    node = helper.make_node("Gemm", ["x", "W"], ["y"], transB=1)
    model = make_model([node], [("x", ["N", 6])], [("y", None)], {"W": rand(5, 6)})
    onnx.save_model(
        model, str(tmp_path / "ext.onnx"), save_as_external_data=True, location="weights.bin", size_threshold=0
    )
    raises_one_line(InvalidModel, lambda: from_onnx(tmp_path / "ext.onnx"), "ext.onnx", "'W'", "external")
    # A hostile location is refused before anything is read.
    hostile = onnx.load(str(tmp_path / "ext.onnx"), load_external_data=False)
    hostile.graph.initializer[0].external_data[0].value = "../../../../etc/shadow"
    raises_one_line(
        InvalidModel, lambda: from_onnx(hostile.SerializeToString(), file="hostile.onnx"), "hostile.onnx", "external"
    )


def test_opset_older_than_7_is_refused():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["N", 3])], [("y", None)], opset=6)
    raises_one_line(UnsupportedOperator, lambda: from_onnx(model), "opset 6")


def test_symbolic_sample_axes_are_refused():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["N", "C"])], [("y", None)])
    raises_one_line(ShapeError, lambda: from_onnx(model), "node 'x'", "'C'")


# ---------------------------------------------------------------------------------------------
# Models exported from torch (legacy TorchScript exporter)
# ---------------------------------------------------------------------------------------------
import torch  # noqa: E402
nn = torch.nn


def export(module, shape, **kw) -> onnx.ModelProto:
    buf = io.BytesIO()
    module.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module, (torch.randn(1, *shape),), buf, dynamo=False, input_names=["x"], output_names=["y"],
            dynamic_axes={"x": {0: "N"}, "y": {0: "N"}}, **kw,
        )
    return onnx.load_model_from_string(buf.getvalue())


def randomise_batchnorm(module):
    torch.manual_seed(0)
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def test_torch_cnn_with_batchnorm_relu_maxpool():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, stride=2, groups=2), nn.BatchNorm2d(8), nn.ReLU6(), nn.AvgPool2d(2, ceil_mode=False),
        nn.Flatten(), nn.Linear(8, 10),
    )
    randomise_batchnorm(net)
    model = export(net, (1, 16, 16), training=torch.onnx.TrainingMode.PRESERVE)
    graph = assert_matches(model, rand(6, 1, 16, 16), atol=1e-4)
    assert "BatchNorm" in kinds(graph) and "MaxPool2d" in kinds(graph)


def test_torch_mlp_with_softmax():
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Flatten(), nn.Linear(20, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 5), nn.Softmax(dim=1)
    )
    model = export(net, (4, 5))
    graph = from_onnx(model)
    x = rand(40, 4, 5, seed=3)
    ref = ort_run(model, x)[0]
    np.testing.assert_array_equal(evaluate(graph, x)[graph.outputs[0]].argmax(1), ref.argmax(1))
    assert kinds(graph) == ["Input", "Flatten", "Dense", "ReLU", "Dense"]


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.side = nn.Conv2d(8, 4, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 10)

    def forward(self, x):
        x = (x - 0.5) / 0.25
        a = torch.relu(self.stem(x))
        b = torch.relu(self.bn1(self.conv1(a)))
        b = torch.relu(self.conv2(b) + a)
        c = torch.cat([b, self.side(a)], dim=1)
        c = self.pool(c)
        return self.fc(c.view(c.size(0), -1))


def test_torch_residual_block_with_cat_and_view():
    torch.manual_seed(2)
    net = _Residual()
    randomise_batchnorm(net)
    model = export(net, (3, 8, 8))
    graph = assert_matches(model, rand(5, 3, 8, 8), atol=1e-4)
    assert {"Add", "Concat", "AvgPool2d", "ScaleShift"} <= set(kinds(graph))


# ---------------------------------------------------------------------------------------------
# Corpus conformance: real, externally produced models
# ---------------------------------------------------------------------------------------------
CORPUS_MODELS = sorted((CORPUS / "onnx").glob("*.onnx")) if (CORPUS / "onnx").is_dir() else []


@pytest.mark.parametrize("path", CORPUS_MODELS, ids=[p.name for p in CORPUS_MODELS])
def test_corpus_model_loads_validates_and_matches_onnxruntime(path):
    graph = from_onnx(path)
    graph.validate()
    model = onnx.load(str(path), load_external_data=False)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value for d in dims[1:]]
    x = np.random.default_rng(0).random((8, *shape), dtype=np.float32)
    assert_matches(model, x, atol=1e-4)


def corpus_model(name):
    return corpus_path("onnx", name)


def _accuracy_check(name, x, labels, expected_correct):
    path = corpus_model(name)
    model = onnx.load(str(path), load_external_data=False)
    graph = from_onnx(path)
    ours = evaluate(graph, x)[graph.outputs[0]]
    ref = ort_run(model, x)[0]
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(ours.argmax(1), ref.argmax(1))
    assert int((ref.argmax(1) == labels).sum()) == expected_correct


def test_corpus_mnist_convnet_avgpool_on_the_mnist_test_set():
    x, y = load_mnist_test()
    _accuracy_check("mnist_convnet_avgpool.onnx", x, y, 9795)  # 97.95% (corpus README)


def test_corpus_mnist_net_256x2_with_input_784_by_1():
    x, y = load_mnist_test()
    _accuracy_check("mnist-net_256x2.onnx", x.reshape(-1, 784, 1), y, 9808)  # 98.08%


def test_corpus_cifar10_resnet_2b_77_of_100():
    x, y = load_cifar10_eran100(normalize=True)
    _accuracy_check("cifar10_resnet_2b.onnx", x, y, 77)


def test_corpus_iris_mlp_98_percent():
    x, y = load_iris()
    _accuracy_check("iris_mlp.onnx", x, y, 147)  # 98% of 150
