"""The ONNX graph walk: from_onnx, the converter core and the table of operator handlers
(one module per operator family: ops_linear, ops_pool, ops_shape, ops_elementwise)."""
from __future__ import annotations

import heapq
import os
from collections import Counter
from typing import Callable

import numpy as np
import onnx
from onnx import numpy_helper

from snc.errors import InvalidModel, ShapeError, SncError, UnsupportedOperator
from snc.ir import Add, Conv2d, Dense, Flatten, Graph, Input, Reshape, ScaleShift, affine
from snc.ir.node import Node


from .common import MIN_OPSET, _Act, _FLOAT_TYPES, _Op, _attribute_value, _default_opset, _display, _dtype_name, _first_line, _load_model
from .constants import _evaluate_constant
from .ops_elementwise import ElementwiseOps
from .ops_linear import LinearOps
from .ops_pool import PoolOps
from .ops_shape import ShapeOps


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


class _Converter(LinearOps, PoolOps, ShapeOps, ElementwiseOps):
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
                self.graph.replace(act.node, affine.compose(producer, scale, shift))
                self._set(op, _Act(act.node, act.shape, origin=op.out(0)))
                return
            if isinstance(producer, (Dense, Conv2d)):
                folded = affine.into_linear(producer, scale, np.asarray(shift, np.float32), act.shape, scale_weights=False)
                if folded is not None:
                    self.graph.replace(act.node, folded)
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

