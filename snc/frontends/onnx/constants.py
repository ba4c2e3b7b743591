"""Constant folding: ONNX nodes whose inputs are all constants are evaluated at load time."""
from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import onnx
from onnx import numpy_helper

from snc.errors import UnsupportedOperator


from .common import _Op


# Constant evaluation (numpy), for nodes whose inputs are all known at load time
# ---------------------------------------------------------------------------------------------
def _evaluate_constant(op: _Op, values: list[np.ndarray | None], opset: int) -> list[np.ndarray]:
    fn = _CONSTANT_OPS.get(op.type)
    if fn is not None:
        out = fn(op, values, opset)
        return out if isinstance(out, list) else [out]
    if not onnx.defs.has(op.type) or op.type.startswith("Random") or op.type in ("Multinomial", "Bernoulli") or any(
        a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in op.proto.attribute
    ):
        from .converter import SUPPORTED_OPS  # the handler table imports this module

        raise UnsupportedOperator(
            f"operator {op.type!r} is not supported; snc supports {', '.join(SUPPORTED_OPS)} "
            "(and any deterministic operator whose inputs are all constants)"
        )
    # Any other deterministic operator on constants: the ONNX reference implementation.
    from onnx.reference import ReferenceEvaluator

    feeds = {name: v for name, v in zip(op.proto.input, values) if name}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        outs = ReferenceEvaluator(op.proto, opsets={"": opset}).run(None, feeds)
    return [np.asarray(o) for o in outs]


def _c_axes(op: _Op, values, opset: int, index: int) -> list[int] | None:
    if opset < 13:
        axes = op.attrs.get("axes")
        return None if axes is None else [int(a) for a in axes]
    if index < len(values) and values[index] is not None:
        return [int(a) for a in np.asarray(values[index]).reshape(-1)]
    return None


def _c_constant(op, values, opset):
    a = op.attrs
    if "value" in a:
        return numpy_helper.to_array(a["value"])
    if "value_float" in a:
        return np.array(a["value_float"], dtype=np.float32)
    if "value_floats" in a:
        return np.array(a["value_floats"], dtype=np.float32)
    if "value_int" in a:
        return np.array(a["value_int"], dtype=np.int64)
    if "value_ints" in a:
        return np.array(a["value_ints"], dtype=np.int64)
    raise UnsupportedOperator(f"Constant with attribute(s) {sorted(a)}; snc reads numeric tensors only")


def _c_unsqueeze(op, values, opset):
    data = values[0]
    axes = _c_axes(op, values, opset, 1) or []
    rank = data.ndim + len(axes)
    for a in sorted(a + rank if a < 0 else a for a in axes):
        data = np.expand_dims(data, a)
    return data


def _c_squeeze(op, values, opset):
    data = values[0]
    axes = _c_axes(op, values, opset, 1)
    if axes is None:
        return np.squeeze(data)
    return np.squeeze(data, axis=tuple(a + data.ndim if a < 0 else a for a in axes))


def _c_slice(op, values, opset):
    data = values[0]
    if opset < 10:
        starts, ends = op.attrs["starts"], op.attrs["ends"]
        axes, steps = op.attrs.get("axes"), None
    else:
        starts, ends = values[1], values[2]
        axes = values[3] if len(values) > 3 else None
        steps = values[4] if len(values) > 4 else None
    starts = [int(v) for v in np.asarray(starts).reshape(-1)]
    ends = [int(v) for v in np.asarray(ends).reshape(-1)]
    axes = list(range(len(starts))) if axes is None else [int(v) for v in np.asarray(axes).reshape(-1)]
    steps = [1] * len(starts) if steps is None else [int(v) for v in np.asarray(steps).reshape(-1)]
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = axis + data.ndim if axis < 0 else axis
        n = data.shape[axis]
        start = start + n if start < 0 else start
        end = end + n if end < 0 else end
        if step > 0:
            start, end = min(max(start, 0), n), min(max(end, 0), n)
        else:
            start, end = min(max(start, 0), n - 1), min(max(end, -1), n - 1)
        data = np.take(data, np.arange(start, end, step, dtype=np.int64), axis=axis)
    return data


def _c_cast(op, values, opset):
    return values[0].astype(onnx.helper.tensor_dtype_to_np_dtype(int(op.attrs["to"])))


def _c_constant_of_shape(op, values, opset):
    fill = numpy_helper.to_array(op.attrs["value"]) if "value" in op.attrs else np.zeros(1, np.float32)
    shape = tuple(int(v) for v in np.asarray(values[0]).reshape(-1))
    return np.full(shape, fill.reshape(-1)[0], dtype=fill.dtype)


def _c_div(op, values, opset):
    a, b = values
    if a.dtype.kind in "iu" and b.dtype.kind in "iu":
        return np.trunc(np.true_divide(a, b)).astype(a.dtype)  # integer Div truncates (C semantics)
    return np.true_divide(a, b).astype(np.result_type(a, b))


def _c_reshape(op, values, opset):
    data = values[0]
    shape = values[1] if len(values) > 1 and values[1] is not None else op.attrs["shape"]
    target = [int(v) for v in np.asarray(shape).reshape(-1)]
    if not int(op.attrs.get("allowzero", 0)):
        target = [data.shape[i] if v == 0 else v for i, v in enumerate(target)]
    return data.reshape(target)


def _c_flatten(op, values, opset):
    data = values[0]
    axis = int(op.attrs.get("axis", 1))
    axis = axis + data.ndim if axis < 0 else axis
    return data.reshape(int(np.prod(data.shape[:axis])), -1)


def _c_expand(op, values, opset):
    data, shape = values[0], tuple(int(d) for d in np.asarray(values[1]).reshape(-1))
    return np.array(np.broadcast_to(data, np.broadcast_shapes(data.shape, shape)))


def _c_variadic(fn):
    def run(op, values, opset):
        out = values[0]
        for v in values[1:]:
            out = fn(out, v)
        return out

    return run


def _c_binary(fn):
    def run(op, values, opset):
        a, b = values
        return np.asarray(fn(a, b)).astype(np.result_type(a, b))

    return run


_CONSTANT_OPS: dict[str, Callable[[_Op, list, int], np.ndarray | list[np.ndarray]]] = {
    "Constant": _c_constant,
    "Identity": lambda op, v, o: v[0],
    "Dropout": lambda op, v, o: [v[0], np.ones(v[0].shape, dtype=bool)],
    "Shape": lambda op, v, o: np.array(v[0].shape, dtype=np.int64)[int(op.attrs.get("start", 0)):op.attrs.get("end")],
    "Size": lambda op, v, o: np.array(np.size(v[0]), dtype=np.int64),
    "Gather": lambda op, v, o: np.take(v[0], v[1].astype(np.int64), axis=int(op.attrs.get("axis", 0))),
    "Unsqueeze": _c_unsqueeze,
    "Squeeze": _c_squeeze,
    "Concat": lambda op, v, o: np.concatenate([x for x in v if x is not None], axis=int(op.attrs["axis"])),
    "Slice": _c_slice,
    "Cast": _c_cast,
    "ConstantOfShape": _c_constant_of_shape,
    "Add": _c_binary(np.add),
    "Sub": _c_binary(np.subtract),
    "Mul": _c_binary(np.multiply),
    "Div": _c_div,
    "Neg": lambda op, v, o: np.negative(v[0]),
    "Sqrt": lambda op, v, o: np.sqrt(v[0]),
    "Reciprocal": lambda op, v, o: np.reciprocal(v[0]),
    "Floor": lambda op, v, o: np.floor(v[0]),
    "Ceil": lambda op, v, o: np.ceil(v[0]),
    "Pow": lambda op, v, o: np.power(v[0], v[1]).astype(v[0].dtype),
    "Min": _c_variadic(np.minimum),
    "Max": _c_variadic(np.maximum),
    "Sum": _c_variadic(np.add),
    "Equal": lambda op, v, o: np.equal(v[0], v[1]),
    "Where": lambda op, v, o: np.where(v[0], v[1], v[2]),
    "Range": lambda op, v, o: np.arange(v[0].item(), v[1].item(), v[2].item(), dtype=v[0].dtype),
    "Expand": _c_expand,
    "Transpose": lambda op, v, o: np.transpose(v[0], op.attrs.get("perm")),
    "Reshape": _c_reshape,
    "Flatten": _c_flatten,
}
