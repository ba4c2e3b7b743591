"""Shared pieces of the ONNX frontend: loading and checking a model, the activation and
operator records, attribute and padding helpers."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import onnx

from snc.errors import InvalidModel, UnsupportedOperator


MIN_OPSET = 7
#: |v| at or above this is "unbounded" (Clip's defaults before opset 11 are +-FLT_MAX).
_UNBOUNDED = 3.4e38
_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}



# Loading
# ---------------------------------------------------------------------------------------------
def _load_model(model: Any) -> onnx.ModelProto:
    """Parse (without following any external-data path) and sanity-check a model."""
    if isinstance(model, onnx.ModelProto):
        proto = model
    else:
        if isinstance(model, (bytes, bytearray, memoryview)):
            data = bytes(model)
        elif isinstance(model, (str, os.PathLike)):
            path = Path(model)
            if not path.exists():
                raise InvalidModel("no such file")
            if path.is_dir():
                raise InvalidModel("is a directory, not an ONNX model")
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise InvalidModel(f"cannot read the file: {exc.strerror or exc}") from None
        else:
            raise InvalidModel(f"expected a path, bytes or onnx.ModelProto, got {type(model).__name__}")
        if not data:
            raise InvalidModel("empty file (0 bytes), not an ONNX model")
        try:
            # Parsing bytes never resolves external data (onnx.load(load_external_data=False) does the same).
            proto = onnx.load_model_from_string(data)
        except Exception as exc:  # protobuf DecodeError and friends: report one line, not a traceback
            raise InvalidModel(
                f"not a readable ONNX model (truncated or corrupt protobuf: {_first_line(exc)})"
            ) from None
    if not proto.HasField("graph") or proto.ir_version <= 0:
        raise InvalidModel("not an ONNX model (no IR version or no graph)")
    if not proto.graph.output:
        raise InvalidModel("the ONNX graph declares no output")
    for tensor_name in _external_tensors(proto.graph):
        raise InvalidModel(
            f"tensor {tensor_name!r} keeps its data in an external file; snc never opens paths named inside "
            "a model: re-save it as one file (onnx.save_model(model, path, save_as_external_data=False))"
        )
    return proto


def _is_external(t: onnx.TensorProto) -> bool:
    return t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data) > 0


def _external_tensors(graph: onnx.GraphProto) -> Iterator[str]:
    """Names of the tensors (initializers, Constant values, subgraphs too) stored externally."""
    for t in graph.initializer:
        if _is_external(t):
            yield t.name or "(unnamed initializer)"
    for st in graph.sparse_initializer:
        for t in (st.values, st.indices):
            if _is_external(t):
                yield st.values.name or "(unnamed sparse initializer)"
    for node in graph.node:
        for a in node.attribute:
            tensors = [a.t] if a.HasField("t") else []
            tensors += list(a.tensors)
            if a.HasField("sparse_tensor"):
                tensors += [a.sparse_tensor.values, a.sparse_tensor.indices]
            for t in tensors:
                if _is_external(t):
                    yield t.name or f"{a.name} of node {node.name or node.output[0] if node.output else node.op_type}"
            for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                yield from _external_tensors(sub)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------------------------
@dataclass
class _Act:
    """An activation tensor: the output of IR node ``node``.

    shape:  its sample shape (no batch axis), after ``pad`` if one is pending;
    origin: the ONNX tensor whose producer created ``node`` (bias/affine folding into ``node``
            is only safe through that tensor and when it has a single consumer);
    pad:    zero padding (top, left, bottom, right) of a Pad not yet folded into a consumer;
    pad_by: display name of that Pad node.
    """

    node: str
    shape: tuple[int, ...]
    origin: str
    pad: tuple[int, int, int, int] | None = None
    pad_by: str = ""


@dataclass
class _Op:
    """One ONNX node being converted."""

    proto: onnx.NodeProto
    display: str  # for messages: the ONNX node name, or its first output
    base: str  # preferred IR name
    attrs: dict[str, Any]

    @property
    def type(self) -> str:
        return self.proto.op_type

    def out(self, i: int = 0) -> str:
        return self.proto.output[i] if i < len(self.proto.output) else ""


# Small helpers
# ---------------------------------------------------------------------------------------------
def _display(node: onnx.NodeProto) -> str:
    if node.name:
        return node.name
    return node.output[0] if node.output and node.output[0] else node.op_type


def _dtype_name(code: int) -> str:
    return onnx.TensorProto.DataType.Name(code) if code in onnx.TensorProto.DataType.values() else str(code)


def _default_opset(model: onnx.ModelProto) -> int | None:
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return int(imp.version)
    return None


def _attribute_value(a: onnx.AttributeProto) -> Any:
    value = onnx.helper.get_attribute_value(a)
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _ints(value: Any, n: int, default: int | None, what: str) -> tuple[int, ...]:
    if value is None:
        return (int(default),) * n  # type: ignore[arg-type]
    seq = tuple(int(v) for v in value)
    if len(seq) != n:
        raise UnsupportedOperator(f"{what} {list(seq)}: snc supports 2-D windows only")
    return seq


def _window_pads(op: _Op, size: tuple[int, ...], kernel, stride, dilation) -> tuple[int, int, int, int]:
    """Explicit (top, left, bottom, right) padding of a Conv/pool, resolving auto_pad."""
    auto = op.attrs.get("auto_pad", "NOTSET") or "NOTSET"
    if auto == "NOTSET":
        pads = _ints(op.attrs.get("pads"), 4, 0, "pads")
    elif auto == "VALID":
        pads = (0, 0, 0, 0)
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        lo, hi = [], []
        for n, k, s, d in zip(size, kernel, stride, dilation):
            out = -(-n // s)
            total = max(0, (out - 1) * s + (k - 1) * d + 1 - n)
            small, big = total // 2, total - total // 2
            lo.append(small if auto == "SAME_UPPER" else big)
            hi.append(big if auto == "SAME_UPPER" else small)
        pads = (lo[0], lo[1], hi[0], hi[1])
    else:
        raise InvalidModel(f"unknown auto_pad {auto!r}")
    if min(pads) < 0:
        raise InvalidModel(f"negative pads {list(pads)}")
    return pads  # type: ignore[return-value]


def _ceil_changes(size: int, k: int, s: int, d: int, lo: int, hi: int) -> bool:
    """Whether ceil_mode=1 gives a different output length than floor mode."""
    span = size + lo + hi - ((k - 1) * d + 1)
    floor_out = span // s + 1
    ceil_out = -(-span // s) + 1
    if (ceil_out - 1) * s >= size + lo:  # the last window must start inside the input or left padding
        ceil_out -= 1
    return ceil_out != floor_out


def _add_pads(a: tuple[int, ...], b: tuple[int, ...] | None) -> tuple[int, int, int, int]:
    if b is None:
        return tuple(a)  # type: ignore[return-value]
    return tuple(int(x) + int(y) for x, y in zip(a, b))  # type: ignore[return-value]


def _unpadded(act: _Act) -> tuple[int, ...]:
    if act.pad is None:
        return act.shape
    t, l, b, r = act.pad
    c, h, w = act.shape
    return (c, h - t - b, w - l - r)


