"""ONNX frontend: an ONNX model (opset 7 and later) in, an ANN graph (snc.ir) out.

The graph computes what the ONNX model computes, sample by sample: axis 0 of every ONNX
tensor is the batch and is dropped from the IR shapes (an ONNX tensor (N, C, H, W) is an IR
value of shape (C, H, W)).

How operators map (``x`` is an activation, ``c`` a constant):

    Conv                 -> Conv2d (auto_pad resolved to explicit pads)
    Gemm, MatMul(x, c)   -> Dense   (alpha folded into W, beta * C into the bias; a following
                                     Add(c) becomes the bias: "MatMul followed by Add")
    BatchNormalization   -> BatchNorm (per-activation statistics -> ScaleShift)
    Relu, Clip(0, c)     -> ReLU(ceiling=c)
    MaxPool, AveragePool -> MaxPool2d, AvgPool2d; GlobalAveragePool -> AvgPool2d over (H, W)
    Pad (zeros, H/W)     -> folded into the padding of the next Conv / AveragePool / MaxPool
    Flatten, Reshape, Squeeze, Unsqueeze -> Flatten or Reshape;  Transpose -> Transpose
    Concat               -> Concat;  Add(x, x') / Sum -> Add (residual joins)
    Add/Sub/Mul/Div(x, c) -> ScaleShift  y = x * scale + shift (consecutive ones merged)
    Identity, Dropout, Cast to float -> bypassed;  trailing Softmax -> dropped (argmax unchanged)

Every node whose inputs are all constants (Constant, shape arithmetic such as
Shape -> Gather -> Unsqueeze -> Concat feeding a Reshape, weight preprocessing) is evaluated
at load time; ``Shape`` of an activation is its static shape with batch 1. Anything else
raises ``UnsupportedOperator`` naming the node: nothing is skipped silently, except nodes whose
outputs reach no graph output (listed in ``graph.meta["notes"]``).

Security: tensors stored in external files are refused; no path named in a model is opened.
"""
from __future__ import annotations

import dataclasses
import heapq
import os
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import onnx
from onnx import numpy_helper

from snc.errors import InvalidModel, ShapeError, SncError, UnsupportedOperator
from snc.ir import (
    Add, AvgPool2d, BatchNorm, Concat, Conv2d, Dense, Flatten, Graph, Input, MaxPool2d, ReLU, Reshape,
    ScaleShift, Transpose,
)
from snc.ir.node import Node

MIN_OPSET = 7
#: |v| at or above this is "unbounded" (Clip's defaults before opset 11 are +-FLT_MAX).
_UNBOUNDED = 3.4e38
_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}


# ---------------------------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------------------------
def from_onnx(
    model: str | os.PathLike | onnx.ModelProto | bytes, *, file: str | None = None
) -> Graph:
    """Convert an ONNX model into an ANN graph (snc.ir) that computes the same function.

    model: a path, the serialized bytes, or a loaded ``onnx.ModelProto``.
    file:  the name errors and ``graph.meta["source"]`` report (defaults to the path).

    Returns a validated Graph with ``graph.outputs`` set to the node(s) computing the model's
    outputs, ``graph.meta["notes"]`` (what the frontend changed that a user should know) and
    ``graph.meta["source"] = {"format": "onnx", "file": ..., "opset": ...}``.
    Raises a typed SncError (InvalidModel, UnsupportedOperator, ShapeError, InvalidGraph) whose
    one-line message names the file and, where it concerns one, the node.
    """
    if file is None and isinstance(model, (str, os.PathLike)):
        file = str(model)
    try:
        proto = _load_model(model)
        graph = _Converter(proto, file).convert()
        graph.validate()
    except SncError as exc:
        if file is not None:
            exc.with_file(file)
        raise
    return graph


# ---------------------------------------------------------------------------------------------
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
# Conversion
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


class _Converter:
    """Walks the ONNX nodes in topological order, dispatching on op type (``HANDLERS``)."""

    def __init__(self, model: onnx.ModelProto, file: str | None) -> None:
        self.model = model
        self.file = file
        self.onnx_graph = model.graph
        self.opset = _default_opset(model)
        self.graph = Graph(model.graph.name or "onnx")
        self.consts: dict[str, np.ndarray] = {}
        self.acts: dict[str, _Act] = {}
        self.notes: list[str] = []
        self.graph_outputs = [o.name for o in model.graph.output]
        self.consumers: dict[str, int] = {}
        self.declared: dict[str, tuple[int | None, ...]] = {}
        self.folded = 0
        self.name_count: Counter[str] = Counter(n.name for n in model.graph.node)

    # --- driver ---------------------------------------------------------------------------
    def convert(self) -> Graph:
        if self.opset is None:
            raise InvalidModel("the model imports no opset of the default ONNX domain")
        if self.opset < MIN_OPSET:
            raise UnsupportedOperator(
                f"opset {self.opset} is older than {MIN_OPSET}, the oldest snc reads; "
                "upgrade it with onnx.version_converter.convert_version"
            )
        self._read_declared_shapes()
        self._read_initializers()
        self._read_inputs()
        nodes = self._live_nodes_in_order()
        self._drop_unused_inputs()
        for node in nodes:
            self._convert_node(node)
        self._set_outputs()
        if self.folded:
            self.notes.append(f"evaluated {self.folded} node(s) whose inputs are all constants at load time")
        self.graph.meta["notes"] = self.notes
        self.graph.meta["source"] = {"format": "onnx", "file": self.file, "opset": int(self.opset)}
        return self.graph

    def _read_declared_shapes(self) -> None:
        """Shapes ONNX shape inference assigns; used to cross-check the shapes snc computes."""
        try:
            inferred = onnx.shape_inference.infer_shapes(self.model)
        except Exception as exc:  # onnx raises several exception types for inconsistent models
            raise InvalidModel(f"ONNX shape inference rejects the model: {_first_line(exc)}") from None
        g = inferred.graph
        for vi in list(g.value_info) + list(g.output) + list(g.input):
            tt = vi.type.tensor_type
            if vi.type.HasField("tensor_type") and tt.HasField("shape"):
                self.declared[vi.name] = tuple(
                    int(d.dim_value) if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim
                )

    def _read_initializers(self) -> None:
        for t in self.onnx_graph.initializer:
            try:
                self.consts[t.name] = np.array(numpy_helper.to_array(t))  # a writable copy
            except Exception as exc:
                raise InvalidModel(f"initializer {t.name!r} is unreadable: {_first_line(exc)}") from None
        if len(self.onnx_graph.sparse_initializer):
            raise UnsupportedOperator("sparse initializers are not supported")

    def _read_inputs(self) -> None:
        inputs = [vi for vi in self.onnx_graph.input if vi.name not in self.consts]
        if not inputs:
            raise InvalidModel("the graph has no input that is not an initializer")
        for vi in inputs:
            name = vi.name
            if not vi.type.HasField("tensor_type"):
                raise UnsupportedOperator("graph input is not a tensor", node=name)
            tt = vi.type.tensor_type
            if tt.elem_type not in _FLOAT_TYPES:
                raise UnsupportedOperator(
                    f"graph input has element type {_dtype_name(tt.elem_type)}; snc reads floating-point inputs only",
                    node=name,
                )
            if not tt.HasField("shape"):
                raise ShapeError("graph input declares no shape; snc needs static sample shapes", node=name)
            dims = list(tt.shape.dim)
            if len(dims) < 2:
                raise ShapeError(
                    f"graph input has rank {len(dims)}; snc needs a batch axis (axis 0) and at least one sample axis",
                    node=name,
                )
            sample = []
            for i, d in enumerate(dims[1:], start=1):
                if not d.HasField("dim_value") or d.dim_value < 1:
                    label = d.dim_param or "unknown"
                    raise ShapeError(
                        f"axis {i} of the input is not a fixed size ({label!r}); snc needs static sample shapes",
                        node=name,
                    )
                sample.append(int(d.dim_value))
            batch = dims[0]
            if batch.HasField("dim_value") and batch.dim_value > 1:
                self.notes.append(
                    f"input {name!r} declares a fixed batch of {batch.dim_value}; snc treats axis 0 as the batch"
                )
            node_name = self.graph.unique_name(name or "input")
            self.graph.add(node_name, Input(shape=tuple(sample)))
            self.acts[name] = _Act(node_name, tuple(sample), origin=name)

    def _live_nodes_in_order(self) -> list[onnx.NodeProto]:
        """The nodes some graph output depends on, in a topological order (ties: file order)."""
        nodes = list(self.onnx_graph.node)
        producer: dict[str, int] = {}
        for i, node in enumerate(nodes):
            for out in node.output:
                if not out:
                    continue
                if out in producer or out in self.consts or out in self.acts:
                    raise InvalidModel(f"tensor {out!r} is produced more than once", node=_display(node))
                producer[out] = i
        for out in self.graph_outputs:
            if out not in producer and out not in self.consts and out not in self.acts:
                raise InvalidModel(f"graph output {out!r} is not produced by any node")
        live: set[int] = set()
        stack = [producer[o] for o in self.graph_outputs if o in producer]
        while stack:
            i = stack.pop()
            if i in live:
                continue
            live.add(i)
            for inp in nodes[i].input:
                if not inp:
                    continue
                if inp in producer:
                    stack.append(producer[inp])
                elif inp not in self.consts and inp not in self.acts:
                    raise InvalidModel(
                        f"input {inp!r} is not produced by any node, initializer or graph input",
                        node=_display(nodes[i]),
                    )
        dead = len(nodes) - len(live)
        if dead:
            self.notes.append(f"ignored {dead} node(s) whose outputs reach no graph output")
        # Kahn's algorithm over the live nodes.
        waiting = {i: {producer[x] for x in nodes[i].input if x in producer} for i in live}
        users: dict[int, list[int]] = {i: [] for i in live}
        for i, deps in waiting.items():
            for d in deps:
                users[d].append(i)
        ready = sorted(i for i, deps in waiting.items() if not deps)
        order: list[int] = []
        heapq.heapify(ready)
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for u in users[i]:
                waiting[u].discard(i)
                if not waiting[u]:
                    heapq.heappush(ready, u)
        if len(order) != len(live):
            stuck = min(i for i in live if i not in set(order))
            raise InvalidModel("the graph has a cycle", node=_display(nodes[stuck]))
        for i in order:
            for inp in nodes[i].input:
                if inp:
                    self.consumers[inp] = self.consumers.get(inp, 0) + 1
        return [nodes[i] for i in order]

    def _drop_unused_inputs(self) -> None:
        """Graph inputs no live node reads (and that are no output) would only demand data."""
        for name, act in list(self.acts.items()):
            if not self.consumers.get(name) and name not in self.graph_outputs:
                self.graph.remove(act.node)
                del self.acts[name]
                self.notes.append(f"ignored graph input {name!r}, which no output depends on")

    def _convert_node(self, node: onnx.NodeProto) -> None:
        display = _display(node)
        # IR name: the ONNX node name when it is unique, else the first output tensor's name.
        first_output = node.output[0] if node.output and node.output[0] else node.op_type
        base = node.name if node.name and self.name_count[node.name] == 1 else first_output
        try:
            attrs = {a.name: _attribute_value(a) for a in node.attribute}
            op = _Op(node, display, base, attrs)
            if node.domain not in ("", "ai.onnx"):
                raise UnsupportedOperator(
                    f"operator {node.op_type!r} of domain {node.domain!r} is not supported; snc reads the default "
                    f"ONNX domain: {', '.join(SUPPORTED_OPS)}"
                )
            if self._fold_if_constant(op):
                return
            handler = HANDLERS.get(node.op_type)
            if handler is None:
                raise UnsupportedOperator(
                    f"operator {node.op_type!r} is not supported; snc supports {', '.join(SUPPORTED_OPS)} "
                    "(and any operator whose inputs are all constants)"
                )
            handler(self, op)
        except SncError as exc:
            if exc.node is None:
                exc.node = display
            raise
        except (ValueError, TypeError, IndexError, KeyError, ArithmeticError, AttributeError) as exc:
            # A malformed node (wrong attribute types, inconsistent tensors): one line, no traceback.
            raise InvalidModel(f"{node.op_type} cannot be converted: {_first_line(exc)}", node=display) from None

    def _set_outputs(self) -> None:
        outputs: list[str] = []
        for out in self.graph_outputs:
            if out in self.consts:
                raise UnsupportedOperator(
                    f"graph output {out!r} is a constant that does not depend on the input", node=out
                )
            act = self.acts.get(out)
            if act is None:
                raise InvalidModel(f"graph output {out!r} was not computed", node=out)
            if act.pad is not None:
                raise UnsupportedOperator(
                    "a zero-padded tensor is a graph output; snc folds Pad only into a following Conv or pool",
                    node=act.pad_by,
                )
            if act.node not in outputs:
                outputs.append(act.node)
        self.graph.outputs = outputs

    # --- values -----------------------------------------------------------------------------
    def _value(self, op: _Op, i: int) -> _Act | np.ndarray | None:
        """Input ``i`` of the node: an activation, a constant, or None when absent."""
        inputs = op.proto.input
        if i >= len(inputs) or not inputs[i]:
            return None
        name = inputs[i]
        if name in self.consts:
            return self.consts[name]
        return self.acts[name]

    def _const(self, op: _Op, i: int, what: str) -> np.ndarray | None:
        value = self._value(op, i)
        if isinstance(value, _Act):
            raise UnsupportedOperator(
                f"{op.type} needs a constant {what} (input {i}); it is computed from the network input"
            )
        return value

    def _act(self, op: _Op, i: int = 0, *, allow_pad: bool = False) -> _Act:
        value = self._value(op, i)
        if value is None:
            raise InvalidModel(f"{op.type} lacks its input {i}")
        if not isinstance(value, _Act):
            raise UnsupportedOperator(
                f"{op.type} input {i} is a constant where snc expects a tensor computed from the network input"
            )
        if value.pad is not None and not allow_pad:
            raise UnsupportedOperator(
                f"its input is zero-padded by Pad {value.pad_by!r}, which snc folds only into a following "
                "Conv, AveragePool, MaxPool or GlobalAveragePool"
            )
        return value

    def _set(self, op: _Op, act: _Act, i: int = 0) -> _Act:
        """Bind output ``i`` of the node to ``act`` after checking it against ONNX shape inference."""
        tensor = op.out(i)
        declared = self.declared.get(tensor)
        if declared is not None:
            mine = act.shape
            if len(declared) != len(mine) + 1 or any(d is not None and d != m for d, m in zip(declared[1:], mine)):
                raise ShapeError(
                    f"snc computes the sample shape {mine} for {tensor!r} but ONNX shape inference says "
                    f"{tuple('?' if d is None else d for d in declared)} (batch first)"
                )
        self.acts[tensor] = act
        return act

    def _emit(self, op: _Op, node: Node, inputs: list[_Act], base: str | None = None) -> _Act:
        """Add ``node`` fed by ``inputs`` to the graph and bind it to the node's first output."""
        name = self.graph.unique_name(base or op.base)
        shape = tuple(int(d) for d in node.infer_shape(name, [a.shape for a in inputs]))
        self.graph.add(name, node, [a.node for a in inputs])
        return self._set(op, _Act(name, shape, origin=op.out(0)))

    def _alias(self, op: _Op, act: _Act) -> None:
        """The node computes the identity: its output is its input."""
        self._set(op, act)

    def _require_unused_outputs(self, op: _Op, first: int, what: str) -> None:
        for i in range(first, len(op.proto.output)):
            out = op.proto.output[i]
            if out and (self.consumers.get(out) or out in self.graph_outputs):
                raise UnsupportedOperator(f"{op.type} output {i} ({what}) is used; snc computes only output 0")

    def _owns(self, act: _Act, tensor: str) -> bool:
        """True if ``tensor`` is the only use of the node behind ``act`` (so it may be rewritten)."""
        return (
            act.origin == tensor
            and act.pad is None
            and self.consumers.get(tensor, 0) == 1
            and tensor not in self.graph_outputs
        )

    def _reshape_to(self, op: _Op, act: _Act, shape: tuple[int, ...]) -> None:
        if not shape:
            raise UnsupportedOperator(f"{op.type} would leave no axis besides the batch")
        if shape == act.shape:
            self._alias(op, act)
        elif len(shape) == 1:
            self._emit(op, Flatten(), [act])
        else:
            self._emit(op, Reshape(shape=shape), [act])

    # --- constant folding ---------------------------------------------------------------------
    def _fold_if_constant(self, op: _Op) -> bool:
        """Evaluate the node now if it does not depend on the network input."""
        values = [self._value(op, i) for i in range(len(op.proto.input))]
        if op.type in ("Shape", "Size") and values and isinstance(values[0], _Act):
            # The static shape of an activation, with batch 1.
            full = np.array((1,) + values[0].shape, dtype=np.int64)
            if op.type == "Size":
                out = np.array(int(np.prod(full)), dtype=np.int64)
            else:
                start, end = int(op.attrs.get("start", 0)), op.attrs.get("end")
                out = full[start:] if end is None else full[start:int(end)]
            self._bind_const(op, [out])
            return True
        if any(isinstance(v, _Act) for v in values):
            return False
        try:
            outs = _evaluate_constant(op, values, self.opset)
        except SncError:
            raise
        except Exception as exc:
            raise InvalidModel(f"cannot evaluate {op.type} on constant inputs: {_first_line(exc)}") from None
        self._bind_const(op, outs)
        return True

    def _bind_const(self, op: _Op, outs: list[np.ndarray]) -> None:
        for name, value in zip(op.proto.output, outs):
            if name:
                self.consts[name] = np.asarray(value)
        self.folded += 1

    # --- elementwise constants ----------------------------------------------------------------
    def _sample_constant(self, op: _Op, c: np.ndarray, act: _Act) -> np.ndarray:
        """A constant of an elementwise op, broadcast over the batch: the same constant without
        its batch axis, which must broadcast to the sample shape without changing it."""
        c = np.array(c, dtype=np.float32)  # a copy: initializers may be shared between nodes
        rank = len(act.shape) + 1
        if c.ndim > rank:
            raise UnsupportedOperator(
                f"{op.type} constant of shape {c.shape} has more axes than the tensor (batch, *{act.shape})"
            )
        if c.ndim == rank:
            if c.shape[0] != 1:
                raise UnsupportedOperator(f"{op.type} constant of shape {c.shape} varies along the batch axis")
            c = c[0]
        try:
            out = np.broadcast_shapes(act.shape, c.shape)
        except ValueError:
            raise ShapeError(
                f"{op.type} constant of shape {c.shape} does not broadcast to the sample shape {act.shape}"
            ) from None
        if tuple(out) != act.shape:
            raise UnsupportedOperator(
                f"{op.type} constant of shape {c.shape} would broadcast the tensor from {act.shape} to {tuple(out)}"
            )
        return c

    def _affine(self, op: _Op, index: int, scale: np.ndarray, shift: np.ndarray) -> None:
        """y = x * scale + shift for x = input ``index``; folded into the producer's bias or a
        preceding ScaleShift when this node is the producer's only user."""
        act = self._act(op, index)
        if self._owns(act, op.proto.input[index]):
            producer = self.graph[act.node]
            if isinstance(producer, ScaleShift):
                merged = producer.replace(scale=producer.scale * scale, shift=producer.shift * scale + shift)
                self.graph.replace(act.node, merged)
                self._set(op, _Act(act.node, act.shape, origin=op.out(0)))
                return
            if np.all(scale == 1) and isinstance(producer, (Dense, Conv2d)):
                bias = _bias_from_constant(shift, act.shape, isinstance(producer, Conv2d))
                if bias is not None:
                    old = producer.bias if producer.bias is not None else np.zeros_like(bias)
                    self.graph.replace(act.node, producer.replace(bias=old + bias))
                    self.notes.append(f"folded {op.type} {op.display!r} into the bias of {act.node!r}")
                    self._set(op, _Act(act.node, act.shape, origin=op.out(0)))
                    return
        self._emit(op, ScaleShift(scale=scale, shift=shift), [act])

    def _add_acts(self, op: _Op, acts: list[_Act], signs: list[float]) -> None:
        """Sum of activations (residual joins): sum_i sign_i * x_i, all of the same shape."""
        shape = acts[0].shape
        for a in acts[1:]:
            if a.shape != shape:
                raise UnsupportedOperator(
                    f"{op.type} of tensors of shapes {[a.shape for a in acts]} needs broadcasting; "
                    "snc adds equal shapes only"
                )
        weight: dict[str, float] = {}
        by_node: dict[str, _Act] = {}
        for a, s in zip(acts, signs):
            weight[a.node] = weight.get(a.node, 0.0) + s
            by_node[a.node] = a
        terms: list[_Act] = []
        for node, w in weight.items():
            a = by_node[node]
            if w != 1.0:
                gain = ScaleShift(scale=np.float32(w), shift=np.float32(0.0))
                name = self.graph.unique_name(f"{op.base}_scale")
                self.graph.add(name, gain, [a.node])
                a = _Act(name, a.shape, origin="")
            terms.append(a)
        if len(terms) == 1:
            self._set(op, terms[0])
        else:
            self._emit(op, Add(), terms)

    # --- handlers -----------------------------------------------------------------------------
    def _identity(self, op: _Op) -> None:
        if op.type == "Dropout":
            self._require_unused_outputs(op, 1, "mask")
            training = self._const(op, 2, "training_mode") if self.opset >= 12 else None
            if training is not None and bool(np.asarray(training).reshape(-1)[0]):
                raise UnsupportedOperator("Dropout in training mode is random; export the model in eval mode")
        self._alias(op, self._act(op, 0))

    def _cast(self, op: _Op) -> None:
        to = int(op.attrs.get("to", 0))
        if to not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE):
            raise UnsupportedOperator(f"Cast of an activation to {_dtype_name(to)}; snc computes in float")
        self._alias(op, self._act(op, 0))

    def _relu(self, op: _Op) -> None:
        self._emit(op, ReLU(), [self._act(op)])

    def _clip(self, op: _Op) -> None:
        act = self._act(op)
        if self.opset < 11:
            lo, hi = op.attrs.get("min"), op.attrs.get("max")
        else:
            lo_c, hi_c = self._const(op, 1, "min"), self._const(op, 2, "max")
            lo = None if lo_c is None else float(np.asarray(lo_c).reshape(-1)[0])
            hi = None if hi_c is None else float(np.asarray(hi_c).reshape(-1)[0])
        if (lo is not None and np.isnan(lo)) or (hi is not None and np.isnan(hi)):
            raise InvalidModel(f"Clip bound is NaN (min={lo}, max={hi})")
        lo = None if lo is None or not np.isfinite(lo) or abs(lo) >= _UNBOUNDED else float(lo)
        hi = None if hi is None or not np.isfinite(hi) or abs(hi) >= _UNBOUNDED else float(hi)
        if lo is None and hi is None:
            self._alias(op, act)
            return
        if lo == 0.0:
            if hi is not None and hi <= 0:
                raise UnsupportedOperator(f"Clip(0, {hi}) is constant zero; a ReLU ceiling must be > 0")
            self._emit(op, ReLU(ceiling=hi), [act])
            return
        if lo is None:
            raise UnsupportedOperator(
                f"Clip with only an upper bound ({hi}) computes min(x, c), not a rectifier; "
                "snc represents Clip(0, c) only"
            )
        raise UnsupportedOperator(
            f"Clip with min={lo}; snc represents Clip only with min 0 (a ReLU, optionally with a ceiling), "
            "because a spiking neuron's rate cannot go below 0"
        )

    def _conv(self, op: _Op) -> None:
        act = self._act(op, 0, allow_pad=True)
        weight = self._const(op, 1, "weight")
        bias = self._const(op, 2, "bias")
        if weight is None:
            raise InvalidModel("Conv lacks its weight")
        if len(act.shape) != 3 or weight.ndim != 4:
            raise UnsupportedOperator(
                f"only 2-D convolutions of (N, C, H, W) tensors are supported; the input has shape (N, *{act.shape}) "
                f"and the weight {weight.shape}"
            )
        kernel = tuple(int(k) for k in weight.shape[2:])
        if "kernel_shape" in op.attrs and tuple(op.attrs["kernel_shape"]) != kernel:
            raise InvalidModel(
                f"kernel_shape {tuple(op.attrs['kernel_shape'])} disagrees with the weight shape {weight.shape}"
            )
        stride = _ints(op.attrs.get("strides"), 2, 1, "strides")
        dilation = _ints(op.attrs.get("dilations"), 2, 1, "dilations")
        padding = _window_pads(op, act.shape[1:], kernel, stride, dilation)
        padding = _add_pads(padding, act.pad)
        if act.pad is not None and any(act.pad):
            self.notes.append(f"folded Pad {act.pad_by!r} into the padding of Conv {op.display!r}")
        weight = np.array(weight, dtype=np.float32)  # copies: initializers may be shared between nodes
        bias = None if bias is None else np.array(bias, dtype=np.float32)
        groups = int(op.attrs.get("group", 1))
        conv = Conv2d(weight=weight, bias=bias, stride=stride, padding=padding, dilation=dilation, groups=groups)
        self._emit(op, conv, [dataclasses.replace(act, shape=_unpadded(act), pad=None)])

    def _gemm(self, op: _Op) -> None:
        b = self._const(op, 1, "B (weights)")
        act = self._act(op, 0)
        if b is None:
            raise InvalidModel("Gemm lacks its input B")
        if int(op.attrs.get("transA", 0)):
            raise UnsupportedOperator("Gemm with transA=1 would transpose the batch axis into the features")
        if len(act.shape) != 1:
            raise UnsupportedOperator(f"Gemm input A must be 2-D (batch, features); it has shape (N, *{act.shape})")
        if b.ndim != 2:
            raise InvalidModel(f"Gemm B must be 2-D, got shape {b.shape}")
        alpha, beta = float(op.attrs.get("alpha", 1.0)), float(op.attrs.get("beta", 1.0))
        weight = (b if int(op.attrs.get("transB", 0)) else b.T).astype(np.float32)
        if alpha != 1.0:
            weight = weight * np.float32(alpha)
        c = self._const(op, 2, "C (bias)")
        bias = None
        if c is not None and beta != 0.0:
            n_out = weight.shape[0]
            c = np.asarray(c, dtype=np.float32)
            if c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1):
                raise UnsupportedOperator(f"Gemm C of shape {c.shape} varies along the batch axis")
            try:
                row = c.reshape(c.shape[-1:] if c.ndim else ())
                bias = np.broadcast_to(row, (n_out,)).astype(np.float32) * np.float32(beta)
            except ValueError:
                raise ShapeError(f"Gemm C of shape {c.shape} does not broadcast to ({n_out},)") from None
        self._emit(op, Dense(weight=np.ascontiguousarray(weight), bias=bias), [act])

    def _matmul(self, op: _Op) -> None:
        a, b = self._value(op, 0), self._value(op, 1)
        if not isinstance(a, _Act) or isinstance(b, _Act):
            raise UnsupportedOperator("MatMul is supported with a constant right operand only (x @ W)")
        act = self._act(op, 0)
        if b.ndim != 2:
            raise UnsupportedOperator(f"MatMul with a constant of shape {b.shape}; snc needs a 2-D weight matrix")
        if len(act.shape) != 1:
            raise UnsupportedOperator(f"MatMul of a tensor of shape (N, *{act.shape}); snc needs (N, features)")
        self._emit(op, Dense(weight=np.ascontiguousarray(b.T.astype(np.float32))), [act])

    def _batchnorm(self, op: _Op) -> None:
        act = self._act(op)
        self._require_unused_outputs(op, 1, "training statistics")
        if int(op.attrs.get("training_mode", 0)):
            raise UnsupportedOperator("BatchNormalization in training mode; export the model in eval mode")
        gamma, beta, mean, var = (self._const(op, i, w) for i, w in ((1, "scale"), (2, "B"), (3, "mean"), (4, "var")))
        if any(v is None for v in (gamma, beta, mean, var)):
            raise InvalidModel("BatchNormalization lacks one of scale, B, mean, var")
        eps = float(op.attrs.get("epsilon", 1e-5))
        stats = [np.array(v, dtype=np.float32) for v in (gamma, beta, mean, var)]
        if all(s.ndim == 1 for s in stats):
            self._emit(op, BatchNorm(mean=stats[2], var=stats[3], gamma=stats[0], beta=stats[1], eps=eps), [act])
            return
        # spatial=0 (opset < 9): statistics per activation, shape (C, D1, ...) -> an affine map.
        g, b, m, v = (s.astype(np.float64) for s in stats)
        scale = g / np.sqrt(v + eps)
        self._emit(op, ScaleShift(scale=scale, shift=b - m * scale), [act])

    def _pool(self, op: _Op) -> None:
        act = self._act(op, 0, allow_pad=True)
        if op.type == "MaxPool":
            self._require_unused_outputs(op, 1, "Indices")
        if len(act.shape) != 3:
            raise UnsupportedOperator(
                f"only 2-D pooling of (N, C, H, W) tensors is supported; the input has shape (N, *{act.shape})"
            )
        if "kernel_shape" not in op.attrs:
            raise InvalidModel(f"{op.type} lacks kernel_shape")
        kernel = _ints(op.attrs["kernel_shape"], 2, None, "kernel_shape")
        stride = _ints(op.attrs.get("strides"), 2, 1, "strides")
        dilation = _ints(op.attrs.get("dilations"), 2, 1, "dilations")
        padding = _window_pads(op, act.shape[1:], kernel, stride, dilation)
        if int(op.attrs.get("ceil_mode", 0)):
            for axis, size in enumerate(act.shape[1:]):
                if _ceil_changes(size, kernel[axis], stride[axis], dilation[axis], padding[axis], padding[axis + 2]):
                    raise UnsupportedOperator(
                        f"{op.type} with ceil_mode=1 changes the output size here; snc pools in floor mode"
                    )
        pad = act.pad if act.pad is not None and any(act.pad) else None
        source = dataclasses.replace(act, shape=_unpadded(act), pad=None)
        if op.type == "MaxPool":
            if pad is not None:
                raise UnsupportedOperator(
                    f"MaxPool after the zero padding of Pad {act.pad_by!r}: padded zeros are data to MaxPool, "
                    "while MaxPool's own padding never wins (-inf); the two cannot be merged"
                )
            self._emit(op, MaxPool2d(kernel=kernel, stride=stride, padding=padding, dilation=dilation), [source])
            return
        if dilation != (1, 1):
            raise UnsupportedOperator(f"AveragePool with dilations {dilation}; snc averages contiguous windows only")
        include = bool(int(op.attrs.get("count_include_pad", 0)))
        if pad is not None:
            # Zeros from a Pad op are real data: they count in the divisor.
            if include or not any(padding):
                padding, include = _add_pads(padding, pad), True
                self.notes.append(f"folded Pad {act.pad_by!r} into the padding of AveragePool {op.display!r}")
            else:
                raise UnsupportedOperator(
                    f"AveragePool with count_include_pad=0 and its own padding after the zero padding of Pad "
                    f"{act.pad_by!r}: the Pad's zeros count in the divisor, the pool's own padding does not"
                )
        self._emit(op, AvgPool2d(kernel=kernel, stride=stride, padding=padding, count_include_pad=include), [source])

    def _global_pool(self, op: _Op) -> None:
        act = self._act(op, 0, allow_pad=(op.type == "GlobalAveragePool"))
        if len(act.shape) != 3:
            raise UnsupportedOperator(
                f"only 2-D global pooling of (N, C, H, W) tensors is supported; the input has shape (N, *{act.shape})"
            )
        kernel = (act.shape[1], act.shape[2])
        source = dataclasses.replace(act, shape=_unpadded(act), pad=None)
        if op.type == "GlobalMaxPool":
            self._emit(op, MaxPool2d(kernel=kernel, stride=kernel), [source])
            return
        pad = act.pad or (0, 0, 0, 0)
        self._emit(op, AvgPool2d(kernel=kernel, stride=kernel, padding=pad, count_include_pad=True), [source])

    def _pad(self, op: _Op) -> None:
        act = self._act(op, 0, allow_pad=True)
        rank = len(act.shape) + 1
        mode = op.attrs.get("mode", "constant")
        if self.opset < 11:
            pads = op.attrs.get("pads", op.attrs.get("paddings"))
            value = float(op.attrs.get("value", 0.0))
            axes = None
        else:
            pads = self._const(op, 1, "pads")
            value_c = self._const(op, 2, "constant_value")
            value = 0.0 if value_c is None or np.size(value_c) == 0 else float(np.asarray(value_c).reshape(-1)[0])
            axes_c = self._const(op, 3, "axes")
            axes = None if axes_c is None else [int(a) for a in np.asarray(axes_c).reshape(-1)]
        if pads is None:
            raise InvalidModel("Pad lacks its pads")
        pads = [int(p) for p in np.asarray(pads).reshape(-1)]
        axes = list(range(rank)) if axes is None else [a + rank if a < 0 else a for a in axes]
        if len(pads) != 2 * len(axes):
            raise InvalidModel(f"Pad has {len(pads)} pads for {len(axes)} axes")
        begin, end = [0] * rank, [0] * rank
        for k, a in enumerate(axes):
            if not 0 <= a < rank:
                raise InvalidModel(f"Pad axis {a} is out of range for rank {rank}")
            begin[a], end[a] = pads[k], pads[k + len(axes)]
        if not any(begin) and not any(end):
            self._alias(op, act)  # an all-zero Pad is the identity
            return
        if mode != "constant":
            raise UnsupportedOperator(
                f"Pad mode {mode!r}; snc folds only zero ('constant') padding into a Conv or pool"
            )
        if value != 0.0:
            raise UnsupportedOperator(f"Pad with value {value}; snc folds only zero padding into a Conv or pool")
        if min(begin + end) < 0:
            raise UnsupportedOperator("Pad with negative pads (cropping) is not supported")
        if begin[0] or end[0]:
            raise UnsupportedOperator("Pad pads the batch axis")
        if rank != 4 or begin[1] or end[1]:
            raise UnsupportedOperator(
                f"Pad of {begin[1:]} / {end[1:]} on a tensor of shape (N, *{act.shape}); snc folds only zero padding "
                "of the H and W axes of (N, C, H, W) tensors into the following Conv or pool"
            )
        mine = (begin[2], begin[3], end[2], end[3])
        pad = _add_pads(mine, act.pad)
        shape = (act.shape[0], act.shape[1] + begin[2] + end[2], act.shape[2] + begin[3] + end[3])
        self._set(op, _Act(act.node, shape, origin=act.origin, pad=pad, pad_by=op.display))

    def _flatten(self, op: _Op) -> None:
        act = self._act(op)
        rank = len(act.shape) + 1
        axis = int(op.attrs.get("axis", 1))
        axis = axis + rank if axis < 0 else axis
        if not 0 <= axis <= rank:
            raise InvalidModel(f"Flatten axis {op.attrs.get('axis')} is out of range for rank {rank}")
        if axis == 0:
            if not self._batch_is_one():
                raise UnsupportedOperator("Flatten with axis 0 merges the batch axis into the features")
            axis = 1
        # ONNX Flatten is always 2-D: (N * prod(axes 1..axis-1), prod(axes axis..)). Axis 0 stays
        # the batch only if the axes merged into it all have size 1.
        merged = int(np.prod(act.shape[: axis - 1]))
        if merged != 1:
            raise UnsupportedOperator(
                f"Flatten with axis {axis} of (N, *{act.shape}) merges {merged} values per sample into the batch "
                "axis; snc keeps axis 0 as the batch"
            )
        self._reshape_to(op, act, (int(np.prod(act.shape[axis - 1:])),))

    def _batch_is_one(self) -> bool:
        for vi in self.onnx_graph.input:
            if vi.name in self.consts:
                continue
            dim = vi.type.tensor_type.shape.dim[0]
            if not (dim.HasField("dim_value") and dim.dim_value == 1):
                return False
        return True

    def _reshape(self, op: _Op) -> None:
        act = self._act(op)
        target = self._const(op, 1, "shape")
        if target is None:
            if "shape" not in op.attrs:
                raise InvalidModel("Reshape lacks its target shape")
            target = np.asarray(op.attrs["shape"])
        t = [int(v) for v in np.asarray(target).reshape(-1)]
        allowzero = bool(int(op.attrs.get("allowzero", 0)))
        if not t:
            raise UnsupportedOperator("Reshape to a scalar drops the batch axis")
        if allowzero and 0 in t:
            raise UnsupportedOperator("Reshape with allowzero=1 to a shape holding 0 (an empty tensor)")
        size = int(np.prod(act.shape))
        rest = []
        for i, v in enumerate(t[1:], start=1):
            if v == 0:
                if i - 1 >= len(act.shape):
                    raise InvalidModel(f"Reshape target {t} copies axis {i}, which the input (N, *{act.shape}) lacks")
                v = act.shape[i - 1]
            rest.append(v)
        if rest.count(-1) > 1 or any(v < -1 for v in rest):
            raise InvalidModel(f"Reshape target {t} is invalid")
        known = int(np.prod([v for v in rest if v != -1]))
        if -1 in rest:
            if t[0] == -1:
                raise InvalidModel(f"Reshape target {t} holds -1 twice")
            if known == 0 or size % known:
                raise ShapeError(f"cannot reshape (N, *{act.shape}) to {t}")
            rest[rest.index(-1)] = size // known
        # Axis 0 must remain the batch: kept (0), batch 1 (1, e.g. folded Shape) or inferred (-1).
        if t[0] not in (0, 1, -1) or int(np.prod(rest)) != size:
            raise UnsupportedOperator(f"Reshape of (N, *{act.shape}) to {t} does not keep axis 0 as the batch")
        self._reshape_to(op, act, tuple(rest))

    def _squeeze(self, op: _Op) -> None:
        act = self._act(op)
        rank = len(act.shape) + 1
        axes = self._axes(op)
        if axes is None:
            axes = [i + 1 for i, d in enumerate(act.shape) if d == 1]
        axes = sorted({a + rank if a < 0 else a for a in axes})
        if any(not 0 <= a < rank for a in axes):
            raise InvalidModel(f"Squeeze axes {axes} are out of range for rank {rank}")
        if 0 in axes:
            raise UnsupportedOperator("Squeeze of the batch axis")
        for a in axes:
            if act.shape[a - 1] != 1:
                raise ShapeError(f"Squeeze of axis {a} of size {act.shape[a - 1]}")
        self._reshape_to(op, act, tuple(d for i, d in enumerate(act.shape) if i + 1 not in axes))

    def _unsqueeze(self, op: _Op) -> None:
        act = self._act(op)
        axes = self._axes(op)
        if axes is None:
            raise InvalidModel("Unsqueeze lacks its axes")
        out_rank = len(act.shape) + 1 + len(axes)
        axes = sorted(a + out_rank if a < 0 else a for a in axes)
        if len(set(axes)) != len(axes) or any(not 0 <= a < out_rank for a in axes):
            raise InvalidModel(f"Unsqueeze axes {axes} are invalid for output rank {out_rank}")
        if 0 in axes:
            raise UnsupportedOperator("Unsqueeze at axis 0 would move the batch axis")
        full = [-1] + list(act.shape)  # -1 marks the batch
        for a in axes:
            full.insert(a, 1)
        self._reshape_to(op, act, tuple(full[1:]))

    def _axes(self, op: _Op) -> list[int] | None:
        if self.opset < 13:
            axes = op.attrs.get("axes")
            return None if axes is None else [int(a) for a in axes]
        c = self._const(op, 1, "axes")
        return None if c is None else [int(a) for a in np.asarray(c).reshape(-1)]

    def _transpose(self, op: _Op) -> None:
        act = self._act(op)
        rank = len(act.shape) + 1
        perm = [int(p) for p in op.attrs.get("perm", range(rank - 1, -1, -1))]
        if sorted(perm) != list(range(rank)):
            raise InvalidModel(f"Transpose perm {perm} is not a permutation of {rank} axes")
        if perm[0] != 0:
            raise UnsupportedOperator(f"Transpose with perm {perm} moves the batch axis (perm[0] must be 0)")
        sample = tuple(p - 1 for p in perm[1:])
        if sample == tuple(range(rank - 1)):
            self._alias(op, act)
        else:
            self._emit(op, Transpose(perm=sample), [act])

    def _concat(self, op: _Op) -> None:
        values = [self._value(op, i) for i in range(len(op.proto.input))]
        if any(v is not None and not isinstance(v, _Act) for v in values):
            raise UnsupportedOperator("Concat of an activation with a constant; snc concatenates network tensors only")
        acts = [self._act(op, i) for i in range(len(op.proto.input)) if op.proto.input[i]]
        rank = len(acts[0].shape) + 1
        if "axis" not in op.attrs:
            raise InvalidModel("Concat lacks its axis attribute")
        axis = int(op.attrs["axis"])
        axis = axis + rank if axis < 0 else axis
        if not 0 <= axis < rank:
            raise InvalidModel(f"Concat axis {op.attrs['axis']} is out of range for rank {rank}")
        if axis == 0:
            raise UnsupportedOperator("Concat along the batch axis")
        if len(acts) == 1:
            self._alias(op, acts[0])
            return
        seen: set[str] = set()
        inputs: list[_Act] = []
        for a in acts:
            if a.node in seen:  # the IR wants distinct inputs: route repeats through a copy
                copy = self.graph.unique_name(f"{a.node}_copy")
                self.graph.add(copy, Reshape(shape=a.shape), [a.node])
                a = _Act(copy, a.shape, origin="")
            seen.add(a.node)
            inputs.append(a)
        self._emit(op, Concat(axis=axis - 1), inputs)

    def _arith(self, op: _Op) -> None:
        """Add, Sub, Mul, Div, Sum and Neg with activations."""
        values = [self._value(op, i) for i in range(len(op.proto.input))]
        if op.type == "Neg":
            self._affine(op, 0, np.float32(-1.0), np.float32(0.0))
            return
        if op.type == "Sum" or all(isinstance(v, _Act) for v in values):
            if any(not isinstance(v, _Act) for v in values):
                raise UnsupportedOperator("Sum of activations and constants")
            if op.type in ("Add", "Sum"):
                acts = [self._act(op, i) for i in range(len(values))]
                self._add_acts(op, acts, [1.0] * len(acts))
                return
            if op.type == "Sub":
                self._add_acts(op, [self._act(op, 0), self._act(op, 1)], [1.0, -1.0])
                return
            raise UnsupportedOperator(
                f"{op.type} of two activations is not linear; snc supports {op.type} by a constant only"
            )
        if len(values) != 2:
            raise InvalidModel(f"{op.type} takes 2 inputs, got {len(values)}")
        first_is_act = isinstance(values[0], _Act)
        index = 0 if first_is_act else 1
        act = self._act(op, index)
        c = self._sample_constant(op, values[1] if first_is_act else values[0], act)
        one, zero = np.ones_like(c), np.zeros_like(c)
        if op.type == "Add":
            scale, shift = one, c
        elif op.type == "Sub":
            scale, shift = (one, -c) if first_is_act else (-one, c)
        elif op.type == "Mul":
            scale, shift = c, zero
        else:  # Div
            if not first_is_act:
                raise UnsupportedOperator("Div of a constant by an activation (c / x) is not linear")
            with np.errstate(divide="ignore"):
                scale, shift = (1.0 / c.astype(np.float64)).astype(np.float32), zero
        self._affine(op, index, scale, shift)

    def _softmax(self, op: _Op) -> None:
        act = self._act(op)
        out = op.out(0)
        if out not in self.graph_outputs or self.consumers.get(out):
            raise UnsupportedOperator(
                f"{op.type} inside the network; snc drops a {op.type} only where its output is a graph output "
                "(argmax is unchanged), and a spiking network has no equivalent elsewhere"
            )
        rank = len(act.shape) + 1
        axis = int(op.attrs.get("axis", 1 if self.opset < 13 else -1))
        axis = axis + rank if axis < 0 else axis
        if self.opset < 13:  # normalises the flattened axes axis.. together
            whole_sample = axis == 1
        else:  # normalises one axis: the whole sample only if every other sample axis has size 1
            whole_sample = axis >= 1 and all(d == 1 for i, d in enumerate(act.shape) if i != axis - 1)
        if not whole_sample:
            raise UnsupportedOperator(
                f"{op.type} over axis {axis} of (N, *{act.shape}) normalises parts of a sample separately; "
                "dropping it could change the argmax"
            )
        self.notes.append(f"dropped trailing {op.type} {op.display!r} (argmax is unchanged)")
        self._alias(op, act)


HANDLERS: dict[str, Callable[[_Converter, _Op], None]] = {
    "Add": _Converter._arith,
    "AveragePool": _Converter._pool,
    "BatchNormalization": _Converter._batchnorm,
    "Cast": _Converter._cast,
    "Clip": _Converter._clip,
    "Concat": _Converter._concat,
    "Conv": _Converter._conv,
    "Div": _Converter._arith,
    "Dropout": _Converter._identity,
    "Flatten": _Converter._flatten,
    "Gemm": _Converter._gemm,
    "GlobalAveragePool": _Converter._global_pool,
    "GlobalMaxPool": _Converter._global_pool,
    "Identity": _Converter._identity,
    "LogSoftmax": _Converter._softmax,
    "MatMul": _Converter._matmul,
    "MaxPool": _Converter._pool,
    "Mul": _Converter._arith,
    "Neg": _Converter._arith,
    "Pad": _Converter._pad,
    "Relu": _Converter._relu,
    "Reshape": _Converter._reshape,
    "Softmax": _Converter._softmax,
    "Squeeze": _Converter._squeeze,
    "Sub": _Converter._arith,
    "Sum": _Converter._arith,
    "Transpose": _Converter._transpose,
    "Unsqueeze": _Converter._unsqueeze,
}

#: Operator types accepted on activations (constant-only nodes are evaluated instead).
SUPPORTED_OPS: list[str] = sorted(set(HANDLERS) | {"Constant", "Shape", "Size"})


# ---------------------------------------------------------------------------------------------
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


def _bias_from_constant(shift: np.ndarray, shape: tuple[int, ...], conv: bool) -> np.ndarray | None:
    """The per-output-channel bias equal to adding ``shift`` (broadcast to ``shape``), or None."""
    full = np.broadcast_to(np.asarray(shift, dtype=np.float32), shape)
    if not conv:
        return np.array(full, dtype=np.float32)
    per_channel = full[:, :1, :1]
    if not np.array_equal(full, np.broadcast_to(per_channel, shape)):
        return None
    return np.array(per_channel[:, 0, 0], dtype=np.float32)


# ---------------------------------------------------------------------------------------------
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
