"""PyTorch frontend: a ``torch.nn.Module`` (or a saved ``torch.export`` program, ``.pt2``) in,
an ANN graph (``snc.ir``) out.

How it reads a model
--------------------
``from_torch`` traces the module with ``torch.export.export`` (eval mode, one example input), so
modules and their functional forms look alike: ``nn.Conv2d`` and ``F.conv2d`` both arrive as
``aten.conv2d``. ``from_exported`` then walks the exported FX graph once, in execution order, with
one handler per ATen operator (``_HANDLERS``). Every value is either

  * computed from the model input  -> an IR node (``_Tensor``: node name + sample shape), or
  * a constant (parameters, buffers, literals, and anything computed from them only, which is
    folded with torch right away: ``w.t()``, ``mean.view(1, 3, 1, 1)``, weight normalisation ...).

Both the default export IR (``aten.conv2d``, ``aten.linear``, ``aten.batch_norm`` ...) and the
core-ATen decomposition (``aten.convolution``, ``aten.addmm``, ``aten._native_batch_norm_legit_no_training``,
``aten.max_pool2d_with_indices`` + ``getitem``) are read. Any other operator on a computed tensor
raises ``UnsupportedOperator`` naming the FX node, its module and the supported operators: nothing
is skipped silently. The one deliberate exception is a *trailing* softmax / log_softmax, which is
dropped (argmax is unchanged) and recorded in ``graph.meta["notes"]``.

Batch convention
----------------
Axis 0 of every input is the batch and stays the batch: IR shapes exclude it, and an operation
that reduces, moves or merges axis 0 (``x.view(-1)``, ``torch.cat(..., dim=0)``, ``x.mean(0)``)
is unsupported. Shapes come from the trace (``node.meta["val"]``), so a model traced with a batch
of 1 is evaluated on any batch size.

IR node names
-------------
The owning module's qualified name (``features.0``, ``fc1``) when the module owns one IR node (or
is a ``torch.nn`` layer, used more than once: ``relu``, ``relu_1``); ``<module>.<fx name>`` for the
several operations of a custom module's ``forward``; the FX node name for top-level functional code.

Security of ``.pt2`` files
--------------------------
``torch.export.load`` unpickles parts of an archive: the example inputs saved by *every*
``torch.export.save`` (``data/sample_inputs/*.pt``, tried with ``weights_only=True``, then **retried
with weights_only=False**), payloads marked ``use_pickle``, legacy ``.pt`` weight files, custom and
opaque object constants; it also loads AOTInductor shared libraries and ``sympify``s (``eval``s)
symbolic-shape strings. ``load_pt2`` therefore never hands torch the user's file: it reads the zip
itself, refuses archives holding any of the above (``InvalidModel``), checks the shape
expressions against a strict grammar, and rebuilds an in-memory archive from the allowed entries,
with the example inputs emptied. torch then loads that copy while ``torch.load`` is replaced by a
function that refuses to run, so nothing in the file is ever unpickled.
"""
from __future__ import annotations

import io
import json
import logging
import operator
import os
import re
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.fx

from snc.errors import InvalidModel, SncError, UnsupportedOperator
from snc.ir import (
    Add, AvgPool2d, BatchNorm, Concat, Conv2d, Dense, Flatten, Graph, Input, MaxPool2d, Node, ReLU,
    Reshape, ScaleShift, SumPool2d, Transpose,
)
from snc.ir.graph import wrap_errors
from snc.ir.node import padding4, window_output

logger = logging.getLogger(__name__)

__all__ = ["from_torch", "from_exported", "load_pt2", "SUPPORTED_OPS"]


# =============================================================================================
# Public API
# =============================================================================================
def from_torch(
    module: torch.nn.Module,
    example_input: torch.Tensor | np.ndarray,
    *,
    name: str | None = None,
) -> Graph:
    """Convert a trained ``torch.nn.Module`` into an ANN graph.

    module:        the network; traced in eval mode (each submodule's mode is restored afterwards).
    example_input: one batch (N, *sample_shape); axis 0 is the batch. numpy arrays are cast to float32.
    name:          graph name (default: the module's class name).
    Raises UnsupportedOperator (naming the FX node and module) for anything snc cannot represent.
    """
    if not isinstance(module, torch.nn.Module):
        raise InvalidModel(f"from_torch expects a torch.nn.Module, got {type(module).__name__}")
    x = _example_tensor(example_input)
    modes = {m: m.training for m in module.modules()}
    try:
        module.eval()
        ep = torch.export.export(module, (x,))
    except SncError:
        raise
    except Exception as exc:  # torch raises many types; the user needs one line, not a trace
        raise UnsupportedOperator(
            f"torch.export could not trace {type(module).__name__}: {_one_line(exc)}"
        ) from exc
    finally:
        for m, mode in modes.items():
            m.training = mode
    graph = from_exported(ep, name=name or type(module).__name__)
    graph.meta["source"]["module"] = type(module).__qualname__
    return graph


def from_exported(ep: "torch.export.ExportedProgram", *, name: str | None = None) -> Graph:
    """Convert a ``torch.export.ExportedProgram`` into an ANN graph (the core of ``from_torch``
    and ``load_pt2``). Programs with in-place operators on computed tensors are functionalised
    first (``ep.run_decompositions({})``)."""
    if not isinstance(ep, torch.export.ExportedProgram):
        raise InvalidModel(f"expected a torch.export.ExportedProgram, got {type(ep).__name__}")
    ep = _functional(ep)
    return _Converter(ep).run(name or "torch_model")


def load_pt2(path: str | os.PathLike) -> Graph:
    """Read a program saved with ``torch.export.save`` without unpickling anything from it.

    Raises InvalidModel (one line, naming the file) for files that are not a readable .pt2
    archive, and for archives holding pickled payloads, compiled code or unsafe expressions.
    """
    path = Path(path)
    file = str(path)
    with wrap_errors(file):
        archive = _sanitized_archive(path)
        ep = _load_sanitized(archive)
        graph = from_exported(ep, name=path.stem)
        graph.meta["source"]["file"] = file
    return graph


# =============================================================================================
# Values flowing through the conversion
# =============================================================================================
@dataclass(frozen=True)
class _Tensor:
    """A value computed from the model input: the IR node producing it and its sample shape."""

    name: str  # provisional IR name (final names are given when the graph is built)
    shape: tuple[int, ...]
    origin: str  # the FX node whose handler created the IR node


@dataclass(frozen=True)
class _Opaque:
    """A value snc cannot use (pooling indices, batch statistics, custom objects)."""

    what: str


@dataclass
class _Entry:
    node: Node
    inputs: list[str]
    fx_name: str
    module: tuple[str, str] | None  # (qualified path, type name) of the owning module
    suffix: str | None = None  # set for auxiliary IR nodes of one FX node
    is_input: bool = False


Handler = Callable[["_Converter", torch.fx.Node, dict[str, Any]], Any]
_HANDLERS: dict[str, Handler] = {}
_SOFTMAX = {"aten.softmax", "aten._softmax", "aten.log_softmax", "aten._log_softmax"}


def _handles(*ops: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for op in ops:
            _HANDLERS[op] = fn
        return fn

    return register


# Python-level operators that appear on symbolic sizes in dynamic-batch programs.
_SCALAR_OPS = {
    operator.add, operator.sub, operator.mul, operator.floordiv, operator.truediv, operator.mod,
    operator.neg, operator.pow, operator.eq, operator.ne, operator.lt, operator.le, operator.gt,
    operator.ge, operator.and_, operator.or_, torch.sym_max, torch.sym_min, torch.sym_int,
    torch.sym_float, torch.sym_not,
}


# =============================================================================================
# The converter: one pass over the FX graph
# =============================================================================================
class _Converter:
    def __init__(self, ep: "torch.export.ExportedProgram") -> None:
        self.ep = ep
        self.env: dict[torch.fx.Node, Any] = {}
        self.entries: dict[str, _Entry] = {}
        self.notes: list[str] = []
        self.batch: Any = None  # batch size of the example input (int, or SymInt when dynamic)
        self.fx: torch.fx.Node | None = None  # node being converted (for error messages)

    # --- driver ------------------------------------------------------------------------------
    def run(self, name: str) -> Graph:
        from torch.export.graph_signature import InputKind, OutputKind

        sig = self.ep.graph_signature
        specs = {spec.arg.name: spec for spec in sig.input_specs if hasattr(spec.arg, "name")}
        for spec in sig.output_specs:
            if spec.kind in (OutputKind.BUFFER_MUTATION, OutputKind.USER_INPUT_MUTATION, OutputKind.PARAMETER_MUTATION):
                raise UnsupportedOperator(
                    f"the forward pass mutates {spec.target or 'an input'!r} (a layer still in training mode?); "
                    "snc needs a pure function of the input"
                )
        graph_nodes = list(self.ep.graph.nodes)
        output_node = next(n for n in graph_nodes if n.op == "output")
        results = output_node.args[0]
        results = list(results) if isinstance(results, (list, tuple)) else [results]
        user_results = [r for r, spec in zip(results, sig.output_specs) if spec.kind == OutputKind.USER_OUTPUT]
        needed = _ancestors([r for r in user_results if isinstance(r, torch.fx.Node)])

        for node in graph_nodes:
            self.fx = node
            if node.op == "placeholder":
                spec = specs.get(node.name)
                if spec is None:
                    raise InvalidModel(f"placeholder {node.name!r} is missing from the graph signature")
                if spec.kind == InputKind.USER_INPUT:
                    self.env[node] = self._input(node)
                elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
                    self.env[node] = self._constant(spec.target, node)
                else:
                    self.env[node] = _Opaque(f"{spec.kind.name.lower()} {spec.target!r}")
            elif node.op == "call_function":
                if node in needed:
                    value = self._call(node)
                    self._check_meta(node, value)
                    self.env[node] = value
            elif node.op == "output":
                pass
            else:  # get_attr / call_module only appear with control flow (torch.cond, scan ...)
                if node in needed:
                    self._unsupported(f"graph node kind {node.op!r} (control flow or submodule call)", op=node.op)
        self.fx = None

        outputs = []
        for r in user_results:
            value = self.env.get(r) if isinstance(r, torch.fx.Node) else r
            if not isinstance(value, _Tensor):
                raise UnsupportedOperator(
                    f"output {getattr(r, 'name', r)!r} does not depend on the model input ({type(value).__name__})",
                    node=getattr(r, "name", None),
                )
            outputs.append(value.name)
        if not outputs:
            raise InvalidModel("the program returns no tensor output")
        return self._build(name, outputs)

    def _call(self, node: torch.fx.Node) -> Any:
        target = node.target
        if target is operator.getitem:
            seq, index = self._map(node.args[0]), self._map(node.args[1])
            if isinstance(seq, _Opaque):
                self._unsupported(f"uses {seq.what}", op="getitem")
            if isinstance(seq, _Tensor):
                self._unsupported("indexing a computed tensor", op="getitem")
            return seq[index]
        if target in _SCALAR_OPS:
            args = [self._map(a) for a in node.args]
            if any(isinstance(a, (_Tensor, _Opaque)) for a in args):
                self._unsupported(f"{getattr(target, '__name__', target)} on a computed tensor", op=str(target))
            return target(*args)
        if not isinstance(target, torch._ops.OpOverload):
            self._unsupported("not supported", op=_op_name(target), list_supported=True)
        op = str(target.overloadpacket)
        args = self._bind(node)
        has_tensor = any(isinstance(v, (_Tensor, _Opaque)) for v in _flatten(list(args.values())))
        if not has_tensor:
            return self._fold(node, target)
        if op in _SOFTMAX:
            return self._softmax(node, args)
        handler = _HANDLERS.get(op)
        if handler is None:
            self._unsupported("not supported", op=op, list_supported=True)
        return handler(self, node, args)

    # --- inputs and constants ----------------------------------------------------------------
    def _input(self, node: torch.fx.Node) -> _Tensor:
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            raise UnsupportedOperator(f"input {node.name!r} is not a tensor ({type(val).__name__})", node=node.name)
        if not val.dtype.is_floating_point:
            raise UnsupportedOperator(f"input {node.name!r} has dtype {val.dtype}; snc needs floating-point inputs", node=node.name)
        if val.dim() < 2:
            raise UnsupportedOperator(
                f"input {node.name!r} has shape {tuple(val.shape)}; snc needs (batch, features...) with axis 0 the batch",
                node=node.name,
            )
        batch = val.shape[0]
        if self.batch is None:
            self.batch = batch
        elif not self._is_batch(batch):
            raise UnsupportedOperator(f"inputs have different batch sizes ({self.batch} and {batch})", node=node.name)
        shape = self._sample_shape(val)
        self.entries[node.name] = _Entry(Input(shape=shape), [], node.name, None, is_input=True)
        return _Tensor(node.name, shape, node.name)

    def _constant(self, target: str, node: torch.fx.Node) -> Any:
        value = self.ep.state_dict.get(target)
        if value is None:
            value = self.ep.constants.get(target)
        if value is None:
            raise InvalidModel(f"parameter or constant {target!r} is missing from the program", node=node.name)
        if isinstance(value, torch.Tensor):
            # A private copy: constant folding may run in-place ops, which must not touch the model.
            return value.detach().clone()
        return _Opaque(f"constant object {target!r} ({type(value).__name__})")

    def _fold(self, node: torch.fx.Node, target: torch._ops.OpOverload) -> Any:
        """Evaluate an operator whose inputs are all constants."""
        args = self._map(node.args)
        kwargs = self._map(dict(node.kwargs))
        try:
            with torch.no_grad():
                return target(*args, **kwargs)
        except Exception as exc:
            self._unsupported(f"could not evaluate it on constants ({_one_line(exc)})", op=str(target.overloadpacket))

    # --- argument access ---------------------------------------------------------------------
    def _map(self, a: Any) -> Any:
        if isinstance(a, torch.fx.Node):
            if a not in self.env:
                raise InvalidModel(f"node {a.name!r} is used before it is defined", node=self.fx.name if self.fx else None)
            return self.env[a]
        if isinstance(a, (list, tuple)):
            return type(a)(self._map(x) for x in a)
        if isinstance(a, dict):
            return {k: self._map(v) for k, v in a.items()}
        return a

    def _bind(self, node: torch.fx.Node) -> dict[str, Any]:
        """Arguments by schema name, defaults filled in, FX nodes replaced by their values."""
        schema = node.target._schema
        out: dict[str, Any] = {}
        for i, arg in enumerate(schema.arguments):
            if i < len(node.args) and not arg.kwarg_only:
                value = node.args[i]
            elif arg.name in node.kwargs:
                value = node.kwargs[arg.name]
            elif arg.has_default_value():
                value = arg.default_value
            else:
                value = None
            out[arg.name] = self._map(value)
        return out

    def tensor(self, value: Any, what: str) -> _Tensor:
        if isinstance(value, _Tensor):
            return value
        if isinstance(value, _Opaque):
            self._unsupported(f"uses {value.what}")
        self._unsupported(f"{what} must be computed from the model input")

    def const(self, value: Any, what: str, *, optional: bool = False) -> np.ndarray | None:
        if value is None and optional:
            return None
        if isinstance(value, (_Tensor, _Opaque)):
            self._unsupported(f"{what} depends on the model input; snc needs it constant")
        if isinstance(value, torch.Tensor):
            return value.detach().cpu().to(torch.float64).numpy()
        if isinstance(value, (bool, int, float)):
            return np.asarray(value, dtype=np.float64)
        self._unsupported(f"{what} is not a tensor or number ({type(value).__name__})")

    # --- emitting IR nodes ---------------------------------------------------------------------
    def emit(self, node: Node, inputs: list[_Tensor], *, suffix: str | None = None) -> _Tensor:
        fx = self.fx
        tmp = fx.name if suffix is None else f"{fx.name}:{suffix}"
        if tmp in self.entries:  # a second auxiliary node of the same kind
            i = 1
            while f"{tmp}{i}" in self.entries:
                i += 1
            tmp, suffix = f"{tmp}{i}", f"{suffix or 'extra'}{i}"
        shape = tuple(int(d) for d in node.infer_shape(fx.name, [t.shape for t in inputs]))
        self.entries[tmp] = _Entry(node, [t.name for t in inputs], fx.name, _owner(fx), suffix)
        return _Tensor(tmp, shape, fx.name)

    def sole_use(self, arg: Any, t: _Tensor) -> _Entry | None:
        """The IR entry that created ``t`` if this FX node is its only user (so it may be fused)."""
        if not isinstance(arg, torch.fx.Node) or arg.name != t.origin:
            return None
        if len(arg.users) != 1:
            return None
        return self.entries.get(t.name)

    # --- helpers for handlers ----------------------------------------------------------------
    def _module_info(self) -> str:
        owner = _owner(self.fx) if self.fx is not None else None
        if owner and owner[0]:
            return f" in module {owner[0]!r} ({owner[1].rsplit('.', 1)[-1]})"
        return ""

    def _unsupported(self, why: str, *, op: str | None = None, list_supported: bool = False) -> None:
        fx = self.fx
        op = op or (str(fx.target.overloadpacket) if fx is not None and isinstance(fx.target, torch._ops.OpOverload) else None)
        if list_supported:
            msg = f"operator {op}{self._module_info()} is not supported; supported operators: {', '.join(SUPPORTED_OPS)}"
        elif op:
            msg = f"operator {op}{self._module_info()}: {why}"
        else:
            msg = f"{why}{self._module_info()}"
        raise UnsupportedOperator(msg, node=fx.name if fx is not None else None)

    def _is_batch(self, d: Any) -> bool:
        if isinstance(d, int) and isinstance(self.batch, int):
            return d == self.batch
        return str(d) == str(self.batch)

    def _sample_shape(self, val: torch.Tensor) -> tuple[int, ...]:
        dims = []
        for d in val.shape[1:]:
            if not isinstance(d, int):
                from torch.fx.experimental.symbolic_shapes import is_concrete_int

                if not is_concrete_int(d):
                    self._unsupported(f"non-batch dimension {d} is dynamic; snc needs fixed sample shapes")
            dims.append(int(d))
        return tuple(dims)

    def out_shape(self, node: torch.fx.Node) -> tuple[int, ...]:
        """The sample shape torch recorded for ``node`` (the first result of a tuple); checks that
        axis 0 is still the batch."""
        val = node.meta.get("val")
        if isinstance(val, (tuple, list)) and val:
            val = val[0]
        if not isinstance(val, torch.Tensor):
            raise InvalidModel("the program carries no shape information for this node", node=node.name)
        if val.dim() < 2 or not self._is_batch(val.shape[0]):
            self._unsupported(
                f"result shape {tuple(val.shape)} no longer has the batch ({self.batch}) on axis 0; "
                "snc keeps axis 0 as the batch (do not merge, move or drop it)"
            )
        return self._sample_shape(val)

    def _check_meta(self, node: torch.fx.Node, value: Any) -> None:
        """Cross-check the shape snc derived against the one torch recorded."""
        val = node.meta.get("val")
        if isinstance(value, (tuple, list)) and value and isinstance(value[0], _Tensor):
            value, val = value[0], (val[0] if isinstance(val, (tuple, list)) else None)
        if not isinstance(value, _Tensor) or not isinstance(val, torch.Tensor):
            return
        want = tuple(val.shape[1:])
        if val.dim() < 1 or not self._is_batch(val.shape[0]) or tuple(int(d) for d in want) != value.shape:
            self._unsupported(f"snc derived sample shape {value.shape} but torch records {tuple(val.shape)} (batch {self.batch})")

    # --- trailing softmax --------------------------------------------------------------------
    def _softmax(self, node: torch.fx.Node, a: dict[str, Any]) -> _Tensor:
        x = self.tensor(a.get("self"), "the softmax input")
        if not all(u.op == "output" for u in node.users):
            self._unsupported("softmax is supported only as the last operation (it is dropped; argmax is unchanged)")
        if len(x.shape) != 1 or _norm_dim(int(a["dim"]), 2) != 1:
            self._unsupported(f"a trailing softmax must run over the class axis of a (batch, classes) tensor, got sample shape {x.shape}")
        kind = "log_softmax" if "log" in str(node.target) else "softmax"
        self.notes.append(
            f"torch: dropped the trailing {kind} {node.name!r}{self._module_info()}; "
            "the graph outputs logits (argmax unchanged)"
        )
        logger.info("dropped trailing %s %r (argmax unchanged)", kind, node.name)
        return x

    # --- building the graph ------------------------------------------------------------------
    def _build(self, name: str, outputs: list[str]) -> Graph:
        primaries: dict[str, int] = {}
        for e in self.entries.values():
            if e.suffix is None and not e.is_input and e.module and e.module[0]:
                primaries[e.module[0]] = primaries.get(e.module[0], 0) + 1

        def base(e: _Entry) -> str:
            if e.is_input or not e.module or not e.module[0]:
                return e.fx_name
            path, kind = e.module
            if primaries.get(path, 0) <= 1 or kind.startswith("torch.nn."):
                return path
            return f"{path}.{e.fx_name}"

        graph = Graph(name)
        final: dict[str, str] = {}
        used: set[str] = set()

        def unique(n: str) -> str:
            if n not in used:
                return n
            i = 1
            while f"{n}_{i}" in used:
                i += 1
            return f"{n}_{i}"

        # Primary nodes claim names first (in execution order), auxiliary ones get "<primary>.<role>".
        for tmp, e in self.entries.items():
            if e.suffix is None:
                final[tmp] = unique(base(e))
                used.add(final[tmp])
        for tmp, e in self.entries.items():
            if e.suffix is not None:
                final[tmp] = unique(f"{base(e)}.{e.suffix}")
                used.add(final[tmp])
        for tmp, e in self.entries.items():
            graph.add(final[tmp], e.node, [final[i] for i in e.inputs])
        graph.outputs = [final[o] for o in outputs]
        graph.meta["source"] = {
            "format": "torch",
            "torch_version": torch.__version__,
            "example_batch": self.batch if isinstance(self.batch, int) else str(self.batch),
        }
        if self.notes:
            graph.meta["notes"] = list(self.notes)
        graph.validate()
        return graph


# =============================================================================================
# Handlers (one per ATen operator family)
# =============================================================================================
def _pair(c: _Converter, value: Any, what: str) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    seq = [int(v) for v in value]
    if len(seq) == 1:
        return seq[0], seq[0]
    if len(seq) == 2:
        return seq[0], seq[1]
    c._unsupported(f"{what} {value!r} is not 2-D")


def _spatial(c: _Converter, x: _Tensor, kind: str) -> None:
    if len(x.shape) != 3:
        c._unsupported(f"{kind} needs a (batch, C, H, W) input, got sample shape {x.shape}")


# --- synaptic layers -------------------------------------------------------------------------
@_handles("aten.conv2d", "aten.convolution")
def _conv(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    x = c.tensor(a["input"], "the convolution input")
    w = c.const(a["weight"], "the convolution weight")
    if a.get("transposed"):
        c._unsupported("transposed convolution")
    if w.ndim != 4:
        c._unsupported(f"only 2-D convolutions are supported (weight of shape {w.shape})")
    _spatial(c, x, "Conv2d")
    b = c.const(a.get("bias"), "the convolution bias", optional=True)
    stride = _pair(c, a["stride"], "stride")
    dilation = _pair(c, a["dilation"], "dilation")
    padding = a["padding"]
    if isinstance(padding, str):
        if padding == "valid":
            pad = (0, 0, 0, 0)
        elif padding == "same":
            # torch pads d*(k-1) in total, the odd element at the bottom / right
            th, tw = dilation[0] * (w.shape[2] - 1), dilation[1] * (w.shape[3] - 1)
            pad = (th // 2, tw // 2, th - th // 2, tw - tw // 2)
        else:
            c._unsupported(f"padding mode {padding!r}")
    else:
        pad = padding4(_pair(c, padding, "padding"))
    return c.emit(Conv2d(weight=w, bias=b, stride=stride, padding=pad, dilation=dilation, groups=int(a["groups"])), [x])


def _dense(c: _Converter, x: _Tensor, weight: np.ndarray, bias: np.ndarray | None) -> _Tensor:
    if len(x.shape) != 1:
        c._unsupported(f"a fully connected layer needs a (batch, features) input, got sample shape {x.shape} (flatten it first)")
    if weight.ndim != 2:
        c._unsupported(f"weight of shape {weight.shape} is not a matrix")
    if bias is not None:
        try:
            bias = np.broadcast_to(bias.reshape(bias.shape[-1:] if bias.ndim else ()), (weight.shape[0],)).copy()
        except ValueError:
            c._unsupported(f"bias of shape {bias.shape} does not fit {weight.shape[0]} outputs")
    return c.emit(Dense(weight=weight, bias=bias), [x])


@_handles("aten.linear")
def _linear(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    x = c.tensor(a["input"], "the linear input")
    return _dense(c, x, c.const(a["weight"], "the linear weight"), c.const(a.get("bias"), "the linear bias", optional=True))


@_handles("aten.mm", "aten.matmul")
def _mm(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    x = c.tensor(a["self"], "the left operand of a matrix product")
    w = c.const(a["other"] if "other" in a else a["mat2"], "the right operand of a matrix product")
    if w.ndim != 2:
        c._unsupported(f"right operand of shape {w.shape} is not a matrix")
    return _dense(c, x, w.T, None)


@_handles("aten.addmm")
def _addmm(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    x = c.tensor(a["mat1"], "the input of addmm")
    w = c.const(a["mat2"], "the weight of addmm")
    bias = c.const(a["self"], "the bias of addmm")
    if bias.ndim == 2:
        if bias.shape[0] != 1:
            c._unsupported(f"bias of shape {bias.shape} varies along the batch")
        bias = bias[0]
    if w.ndim != 2:
        c._unsupported(f"weight of shape {w.shape} is not a matrix")
    return _dense(c, x, float(a["alpha"]) * w.T, float(a["beta"]) * bias)


# --- batch normalisation ---------------------------------------------------------------------
def _bn(c: _Converter, a: dict, eps: float) -> _Tensor:
    x = c.tensor(a["input"], "the batch-norm input")
    mean = c.const(a.get("running_mean"), "the running mean", optional=True)
    var = c.const(a.get("running_var"), "the running variance", optional=True)
    if mean is None or var is None:
        c._unsupported("BatchNorm without running statistics normalises with batch statistics")
    if mean.ndim != 1:
        c._unsupported(f"running statistics of shape {mean.shape} are not per-channel vectors")
    n = mean.shape[0]
    gamma = c.const(a.get("weight"), "the BatchNorm weight", optional=True)
    beta = c.const(a.get("bias"), "the BatchNorm bias", optional=True)
    gamma = np.ones(n) if gamma is None else gamma
    beta = np.zeros(n) if beta is None else beta
    return c.emit(BatchNorm(mean=mean, var=var, gamma=gamma, beta=beta, eps=float(eps)), [x])


@_handles("aten.batch_norm")
def _batch_norm(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    if a.get("training"):
        c._unsupported("BatchNorm in training mode (call model.eval())")
    return _bn(c, a, a["eps"])


@_handles("aten._native_batch_norm_legit_no_training", "aten._batch_norm_no_update")
def _batch_norm_legit(c: _Converter, fx: torch.fx.Node, a: dict) -> tuple:
    out = _bn(c, a, a["eps"])
    return (out, _Opaque("batch statistics"), _Opaque("batch statistics"), _Opaque("batch statistics"))


# --- activations -----------------------------------------------------------------------------
def _relu(c: _Converter, x: _Tensor, ceiling: Any = None) -> _Tensor:
    if ceiling is not None:
        ceiling = float(ceiling)
        if not (np.isfinite(ceiling) and ceiling > 0):
            c._unsupported(f"a clamp to [0, {ceiling}] is not a ReLU")
    return c.emit(ReLU(ceiling=ceiling), [x])


def _scalar(c: _Converter, value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, (int, float, bool)):
        return float(value)
    c._unsupported(f"{what} must be a constant scalar")


@_handles("aten.relu")
def _relu_op(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    return _relu(c, c.tensor(a["self"], "the input"))


@_handles("aten.relu6")
def _relu6(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    return _relu(c, c.tensor(a["self"], "the input"), 6.0)


@_handles("aten.hardtanh")
def _hardtanh(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    lo, hi = float(a["min_val"]), float(a["max_val"])
    if lo != 0.0:
        c._unsupported(f"hardtanh({lo}, {hi}) is a ReLU only with min_val 0")
    return _relu(c, c.tensor(a["self"], "the input"), hi)


@_handles("aten.clamp", "aten.clamp_min")
def _clamp(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    lo = _scalar(c, a.get("min"), "the clamp minimum")
    hi = _scalar(c, a.get("max"), "the clamp maximum")
    if lo != 0.0:
        c._unsupported(f"clamp(min={lo}, max={hi}) is a ReLU only with min 0")
    return _relu(c, c.tensor(a["self"], "the input"), hi)


@_handles("aten.threshold")
def _threshold(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    if float(a["threshold"]) != 0.0 or float(a["value"]) != 0.0:
        c._unsupported("threshold(x, t, v) is a ReLU only with t = v = 0")
    return _relu(c, c.tensor(a["self"], "the input"))


# --- pooling ---------------------------------------------------------------------------------
def _pool_geometry(c: _Converter, fx: torch.fx.Node, x: _Tensor, a: dict, dilation=(1, 1)):
    """(kernel, stride, padding, extra) where ``extra`` (bottom, right) pads ceil_mode windows."""
    kernel = _pair(c, a["kernel_size"], "kernel_size")
    stride = _pair(c, a["stride"], "stride") if a.get("stride") else kernel
    ph, pw = _pair(c, a.get("padding", 0), "padding")
    out = c.out_shape(fx)
    extra = [0, 0]
    for i, (n, k, s, p, d) in enumerate(zip(x.shape[1:], kernel, stride, (ph, pw), dilation)):
        floor_n = window_output(n, k, s, p, p, d)
        if out[1 + i] != floor_n:
            if not a.get("ceil_mode"):
                c._unsupported(f"snc computes {floor_n} output positions on axis {i + 2}, torch {out[1 + i]}")
            extra[i] = (out[1 + i] - 1) * s + d * (k - 1) + 1 - (n + 2 * p)
    return kernel, stride, (ph, pw, ph + extra[0], pw + extra[1]), extra


@_handles("aten.max_pool2d", "aten.max_pool2d_with_indices")
def _max_pool(c: _Converter, fx: torch.fx.Node, a: dict) -> Any:
    x = c.tensor(a["self"], "the pooling input")
    _spatial(c, x, "MaxPool2d")
    dilation = _pair(c, a.get("dilation", 1), "dilation")
    kernel, stride, padding, _ = _pool_geometry(c, fx, x, a, dilation)
    # ceil_mode windows past the edge: extra -inf padding, which never wins a max.
    out = c.emit(MaxPool2d(kernel=kernel, stride=stride, padding=padding, dilation=dilation), [x])
    if "with_indices" in str(fx.target):
        return (out, _Opaque("max-pooling indices"))
    return out


@_handles("aten.avg_pool2d")
def _avg_pool(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    x = c.tensor(a["self"], "the pooling input")
    _spatial(c, x, "AvgPool2d")
    if a.get("divisor_override") is not None:
        c._unsupported("avg_pool2d with divisor_override")
    kernel, stride, padding, extra = _pool_geometry(c, fx, x, a)
    include_pad = bool(a.get("count_include_pad", True))
    if any(extra):
        # torch divides ceil_mode windows by their part inside the (padded) input; without
        # padding that is the count of valid positions, which count_include_pad=False gives.
        if include_pad and any(padding[:2]):
            c._unsupported("avg_pool2d with ceil_mode, padding and count_include_pad=True")
        include_pad = False
    return c.emit(AvgPool2d(kernel=kernel, stride=stride, padding=padding, count_include_pad=include_pad), [x])


def _adaptive_kernel(c: _Converter, x: _Tensor, size: Any) -> tuple[int, int]:
    _spatial(c, x, "adaptive pooling")
    oh, ow = (x.shape[1] if size[0] is None else int(size[0]), x.shape[2] if size[-1] is None else int(size[-1]))
    h, w = x.shape[1:]
    if h % oh or w % ow:
        c._unsupported(f"adaptive pooling from {h}x{w} to {oh}x{ow}: the output size must divide the input size")
    return h // oh, w // ow


@_handles("aten.adaptive_avg_pool2d", "aten._adaptive_avg_pool2d")
def _adaptive_avg(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    x = c.tensor(a["self"], "the pooling input")
    k = _adaptive_kernel(c, x, list(a["output_size"]))
    return c.emit(AvgPool2d(kernel=k, stride=k), [x])


@_handles("aten.adaptive_max_pool2d")
def _adaptive_max(c: _Converter, fx: torch.fx.Node, a: dict) -> tuple:
    x = c.tensor(a["self"], "the pooling input")
    k = _adaptive_kernel(c, x, list(a["output_size"]))
    return (c.emit(MaxPool2d(kernel=k, stride=k), [x]), _Opaque("max-pooling indices"))


@_handles("aten.mean", "aten.sum")
def _global_pool(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    x = c.tensor(a["self"], "the input")
    dims = a.get("dim")
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        c._unsupported("a reduction over all axes includes the batch axis")
    dims = [dims] if isinstance(dims, int) else list(dims)
    ndim = len(x.shape) + 1
    norm = sorted(_norm_dim(int(d), ndim) for d in dims)
    if ndim != 4 or norm != [2, 3]:
        c._unsupported(f"only a reduction over the spatial axes (2, 3) of a (batch, C, H, W) tensor is supported, got dims {dims}")
    k = (x.shape[1], x.shape[2])
    pool = AvgPool2d(kernel=k, stride=k) if "mean" in str(fx.target) else SumPool2d(kernel=k, stride=k)
    if a.get("keepdim"):
        return c.emit(pool, [x])
    return c.emit(Flatten(), [c.emit(pool, [x])], suffix="flatten")


# --- shape operations ------------------------------------------------------------------------
@_handles(
    "aten.view", "aten.reshape", "aten._unsafe_view", "aten.view_copy", "aten._reshape_alias",
    "aten.flatten", "aten.unflatten", "aten.squeeze", "aten.unsqueeze", "aten.view_as", "aten.reshape_as",
)
def _reshape(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    x = c.tensor(a["self"], "the input")
    ndim = len(x.shape) + 1
    op = str(fx.target.overloadpacket)
    if op == "aten.flatten" and _norm_dim(int(a.get("start_dim", 0)), ndim) == 0:
        c._unsupported("flatten from axis 0 merges the batch; use torch.flatten(x, 1) / nn.Flatten()")
    if op == "aten.unflatten" and _norm_dim(int(a["dim"]), ndim) == 0:
        c._unsupported("unflatten of axis 0 splits the batch")
    if op == "aten.unsqueeze" and _norm_dim(int(a["dim"]), ndim + 1) == 0:
        c._unsupported("unsqueeze(0) puts a new axis before the batch")
    if op == "aten.squeeze":
        dims = a.get("dim")
        if dims is None:
            if c._is_batch(1):
                c._unsupported("squeeze() without dims removes the batch axis for a batch of 1; name the axes")
        else:
            dims = [dims] if isinstance(dims, int) else list(dims)
            if any(_norm_dim(int(d), ndim) == 0 for d in dims):
                c._unsupported("squeeze(0) removes the batch axis")
    shape = c.out_shape(fx)
    if shape == x.shape:
        return x
    if len(shape) == 1:
        return c.emit(Flatten(), [x])
    return c.emit(Reshape(shape=shape), [x])


@_handles("aten.permute", "aten.transpose")
def _permute(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    x = c.tensor(a["self"], "the input")
    ndim = len(x.shape) + 1
    if "dims" in a:
        perm = [_norm_dim(int(d), ndim) for d in a["dims"]]
    else:
        perm = list(range(ndim))
        d0, d1 = _norm_dim(int(a["dim0"]), ndim), _norm_dim(int(a["dim1"]), ndim)
        perm[d0], perm[d1] = perm[d1], perm[d0]
    if perm[0] != 0:
        c._unsupported(f"permutation {perm} moves the batch axis")
    if perm == list(range(ndim)):
        return x
    return c.emit(Transpose(perm=tuple(p - 1 for p in perm[1:])), [x])


@_handles("aten.cat")
def _cat(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    parts = list(a["tensors"])
    if not all(isinstance(p, _Tensor) for p in parts):
        c._unsupported("concatenating constants with computed tensors")
    ndim = len(parts[0].shape) + 1
    axis = _norm_dim(int(a.get("dim", 0)), ndim)
    if axis == 0:
        c._unsupported("concatenation along the batch axis")
    if len(parts) == 1:
        return parts[0]
    seen: set[str] = set()
    inputs = []
    for p in parts:
        if p.name in seen:  # the IR joins distinct nodes: give a repeated input its own identity copy
            p = c.emit(Reshape(shape=p.shape), [p], suffix="copy")
        seen.add(p.name)
        inputs.append(p)
    return c.emit(Concat(axis=axis - 1), inputs)


@_handles(
    "aten.clone", "aten.alias", "aten.detach", "aten.contiguous", "aten.dropout", "aten.feature_dropout",
    "aten.alpha_dropout", "aten.feature_alpha_dropout", "aten.native_dropout", "aten._to_copy", "aten.to",
    "aten.type_as", "aten.lift_fresh_copy",
)
def _identity(c: _Converter, fx: torch.fx.Node, a: dict) -> Any:
    x = c.tensor(a.get("self", a.get("input")), "the input")
    op = str(fx.target.overloadpacket)
    if "dropout" in op and a.get("train"):
        c._unsupported("dropout in training mode (call model.eval())")
    val = fx.meta.get("val")
    if isinstance(val, torch.Tensor) and not val.dtype.is_floating_point:
        c._unsupported(f"conversion to {val.dtype}")
    if op == "aten.native_dropout":
        return (x, _Opaque("the dropout mask"))
    return x


# --- elementwise arithmetic ------------------------------------------------------------------
def _sample_constant(c: _Converter, value: Any, x: _Tensor, what: str) -> np.ndarray:
    """A constant operand as an array broadcastable to the sample shape (batch axis removed)."""
    arr = c.const(value, what)
    full = len(x.shape) + 1
    if arr.ndim > full:
        c._unsupported(f"{what} of shape {arr.shape} has more axes than the tensor it combines with")
    if arr.ndim == full:
        if arr.shape[0] != 1 and not np.all(arr == arr[:1]):
            c._unsupported(f"{what} of shape {arr.shape} varies along the batch axis")
        arr = arr[0]
    try:
        out = np.broadcast_shapes(x.shape, arr.shape)
    except ValueError:
        c._unsupported(f"{what} of shape {arr.shape} does not broadcast to {x.shape}")
    if tuple(out) != x.shape:
        c._unsupported(f"{what} of shape {arr.shape} would change the shape {x.shape}")
    return arr


def _affine(c: _Converter, arg: Any, x: _Tensor, scale: np.ndarray | float, shift: np.ndarray | float) -> _Tensor:
    """y = x * scale + shift, fused into the ScaleShift (or the bias of the Dense / Conv2d) that
    produced ``x`` when this operation is its only user."""
    scale = np.asarray(scale, dtype=np.float64)
    shift = np.asarray(shift, dtype=np.float64)
    entry = c.sole_use(arg, x)
    if entry is not None:
        node = entry.node
        if isinstance(node, ScaleShift):
            entry.node = ScaleShift(
                scale=node.scale.astype(np.float64) * scale, shift=node.shift.astype(np.float64) * scale + shift,
                meta=dict(node.meta),
            )
            return _Tensor(x.name, x.shape, c.fx.name)
        if isinstance(node, (Dense, Conv2d)) and np.all(scale == 1.0):
            full = np.broadcast_to(shift, x.shape)
            per_out = full.reshape(full.shape[0], -1)
            if np.all(per_out == per_out[:, :1]):
                bias = per_out[:, 0] if node.bias is None else node.bias.astype(np.float64) + per_out[:, 0]
                entry.node = node.replace(bias=bias)
                return _Tensor(x.name, x.shape, c.fx.name)
    if np.any(~np.isfinite(scale)) or np.any(~np.isfinite(shift)):
        c._unsupported("the constant operand makes the result non-finite (division by zero?)")
    return c.emit(ScaleShift(scale=scale, shift=shift), [x])


def _operands(c: _Converter, fx: torch.fx.Node, a: dict) -> tuple[Any, Any, Any, Any]:
    """(self value, other value, self FX arg, other FX arg)."""
    first = fx.args[0] if fx.args else fx.kwargs.get("self")
    second = fx.args[1] if len(fx.args) > 1 else fx.kwargs.get("other")
    return a["self"], a["other"], first, second


@_handles("aten.add", "aten.sub", "aten.rsub")
def _add_sub(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    op = str(fx.target.overloadpacket)
    lhs, rhs, lhs_fx, rhs_fx = _operands(c, fx, a)
    alpha = float(a.get("alpha", 1) if a.get("alpha") is not None else 1)
    # result = sa * lhs + sb * rhs
    sa, sb = {"aten.add": (1.0, alpha), "aten.sub": (1.0, -alpha), "aten.rsub": (-alpha, 1.0)}[op]
    if isinstance(lhs, _Tensor) and isinstance(rhs, _Tensor):
        if lhs.name == rhs.name:
            return _affine(c, None, lhs, sa + sb, 0.0)
        if lhs.shape != rhs.shape:
            c._unsupported(f"adding tensors of different shapes {lhs.shape} and {rhs.shape} (broadcasting)")
        terms = []
        for t, s, role in ((lhs, sa, "lhs"), (rhs, sb, "rhs")):
            terms.append(t if s == 1.0 else c.emit(ScaleShift(scale=np.float32(s), shift=np.float32(0)), [t], suffix=f"scale_{role}"))
        return c.emit(Add(), terms)
    if isinstance(lhs, _Tensor):
        k = _sample_constant(c, rhs, lhs, "the constant operand")
        return _affine(c, lhs_fx, lhs, sa, sb * k)
    x = c.tensor(rhs, "an operand")
    k = _sample_constant(c, lhs, x, "the constant operand")
    return _affine(c, rhs_fx, x, sb, sa * k)


@_handles("aten.mul")
def _mul(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    lhs, rhs, lhs_fx, rhs_fx = _operands(c, fx, a)
    if isinstance(lhs, _Tensor) and isinstance(rhs, _Tensor):
        c._unsupported("the product of two computed tensors (gating / attention) has no spiking equivalent")
    if not isinstance(lhs, _Tensor):
        lhs, rhs, lhs_fx = rhs, lhs, rhs_fx
    x = c.tensor(lhs, "an operand")
    k = _sample_constant(c, rhs, x, "the constant factor")
    return _affine(c, lhs_fx, x, k, 0.0)


@_handles("aten.div")
def _div(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    lhs, rhs, lhs_fx, _ = _operands(c, fx, a)
    if a.get("rounding_mode") is not None:
        c._unsupported(f"division with rounding_mode={a['rounding_mode']!r}")
    if isinstance(rhs, (_Tensor, _Opaque)):
        c._unsupported("division by a computed tensor")
    x = c.tensor(lhs, "the dividend")
    k = _sample_constant(c, rhs, x, "the divisor")
    if np.any(k == 0):
        c._unsupported("division by a constant that contains zeros")
    return _affine(c, lhs_fx, x, 1.0 / k, 0.0)


@_handles("aten.neg")
def _neg(c: _Converter, fx: torch.fx.Node, a: dict) -> _Tensor:
    return _affine(c, fx.args[0], c.tensor(a["self"], "the input"), -1.0, 0.0)


@_handles("aten.sym_size")
def _sym_size(c: _Converter, fx: torch.fx.Node, a: dict) -> Any:
    x = c.tensor(a["self"], "the input")
    d = _norm_dim(int(a["dim"]), len(x.shape) + 1)
    return c.batch if d == 0 else x.shape[d - 1]


SUPPORTED_OPS: list[str] = sorted(set(_HANDLERS) | {f"{op} (trailing, dropped)" for op in ("aten.softmax", "aten.log_softmax")})


# =============================================================================================
# Small helpers
# =============================================================================================
def _example_tensor(example_input: Any) -> torch.Tensor:
    if isinstance(example_input, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(example_input, dtype=np.float32))
    elif isinstance(example_input, torch.Tensor):
        x = example_input.detach()
    else:
        raise InvalidModel(f"example_input must be a torch.Tensor or numpy array, got {type(example_input).__name__}")
    if x.dim() < 2:
        raise InvalidModel(f"example_input of shape {tuple(x.shape)} needs a batch axis first: (N, *sample_shape)")
    return x


def _owner(node: torch.fx.Node) -> tuple[str, str] | None:
    stack = node.meta.get("nn_module_stack") if hasattr(node, "meta") else None
    if not stack:
        return None
    path, kind = list(stack.values())[-1]
    kind = kind if isinstance(kind, str) else f"{getattr(kind, '__module__', '')}.{getattr(kind, '__qualname__', kind)}"
    return str(path), kind


def _ancestors(roots: list[torch.fx.Node]) -> set[torch.fx.Node]:
    seen: set[torch.fx.Node] = set()
    stack = list(roots)
    while stack:
        n = stack.pop()
        if n in seen:
            continue
        seen.add(n)
        stack.extend(n.all_input_nodes)
    return seen


def _flatten(values: Any) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(v, (list, tuple)):
            out.extend(_flatten(v))
        else:
            out.append(v)
    return out


def _norm_dim(d: int, ndim: int) -> int:
    return d + ndim if d < 0 else d


def _op_name(target: Any) -> str:
    return getattr(target, "__qualname__", None) or getattr(target, "__name__", None) or str(target)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(exc).__name__}: {first}"[:300]


def _functional(ep: "torch.export.ExportedProgram") -> "torch.export.ExportedProgram":
    """Functionalise programs whose in-place operators touch computed tensors (the default
    export IR keeps ``relu_`` and friends; their aliasing is resolved by ``run_decompositions``)."""
    sig = ep.graph_signature
    user = {s.arg.name for s in sig.input_specs if s.kind.name == "USER_INPUT" and hasattr(s.arg, "name")}
    tainted: set[torch.fx.Node] = set()
    mutating = None
    for node in ep.graph.nodes:
        if node.op == "placeholder" and node.name in user:
            tainted.add(node)
        elif node.op == "call_function" and any(i in tainted for i in node.all_input_nodes):
            tainted.add(node)
            target = node.target
            if isinstance(target, torch._ops.OpOverload) and target._schema.is_mutable:
                mutating = mutating or node
    if mutating is None:
        return ep
    try:
        return ep.run_decompositions({})
    except Exception as exc:
        raise UnsupportedOperator(
            f"in-place operator {mutating.target} could not be functionalised: {_one_line(exc)}", node=mutating.name
        ) from exc


# =============================================================================================
# .pt2 archives: read without unpickling
# =============================================================================================
_MAX_EXPANSION = 64  # uncompressed bytes allowed per archive byte (pt2 entries are stored, ratio ~1)
_META_RECORDS = {".data/version", ".data/serialization_id", "byteorder"}  # rewritten by torch's writer
_NAME = r"[A-Za-z0-9_.\-]+"
_RE_MODEL = re.compile(rf"models/({_NAME})\.json")
_RE_WEIGHTS_CONFIG = re.compile(rf"data/weights/({_NAME})_weights_config\.json")
_RE_CONSTANTS_CONFIG = re.compile(rf"data/constants/({_NAME})_constants_config\.json")
_RE_WEIGHT = re.compile(r"data/weights/(weight_\d+)")
_RE_CONSTANT = re.compile(r"data/constants/(tensor_\d+)")
_RE_SAMPLE_INPUTS = re.compile(rf"data/sample_inputs/({_NAME})\.pt")

# Symbolic shape expressions are passed to sympy.sympify (an eval). Only plain arithmetic on
# shape symbols and these names is accepted; no attributes, no subscripts, no power operator.
_SYM_NAMES = {
    "Symbol", "Integer", "Add", "Mul", "Max", "Min", "Mod", "FloorDiv", "CeilDiv", "CleanDiv", "PythonMod",
    "ModularIndexing", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "And", "Or", "Not", "True", "False", "oo",
    "positive", "negative", "nonnegative", "nonpositive", "integer", "real", "finite", "zero", "nonzero",
    "even", "odd", "rational", "commutative", "extended_real",
}
_SYM_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d{1,19})(?![\w.])|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<str>'[A-Za-z0-9_]{1,32}')"
    r"|(?P<op><=|>=|==|!=|//|[-+*/%(),<>=&|~]))"
)
_SYM_SYMBOL = re.compile(r"[a-z]{1,4}\d{1,9}")


def _safe_sym_expr(expr: str) -> bool:
    if not isinstance(expr, str) or len(expr) > 2000:
        return False
    pos = 0
    while pos < len(expr):
        m = _SYM_TOKEN.match(expr, pos)
        if m is None:
            return expr[pos:].strip() == ""
        if m.group("op") == "*" and expr[m.end():m.end() + 1] == "*":
            return False
        name = m.group("name")
        if name is not None and name not in _SYM_NAMES and not _SYM_SYMBOL.fullmatch(name):
            return False
        pos = m.end()
    return True


def _expr_strings(obj: Any) -> list[str]:
    found: list[str] = []
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, dict):
            for k, v in o.items():
                if k == "expr_str":
                    found.append(v)
                else:
                    stack.append(v)
        elif isinstance(o, list):
            stack.extend(o)
    return found


def _sanitized_archive(path: Path) -> bytes:
    """Check a .pt2 file and return a rebuilt archive holding only raw tensors and JSON."""
    try:
        data = path.read_bytes()
    except IsADirectoryError:
        raise InvalidModel("is a directory, not a .pt2 file") from None
    except OSError as exc:
        raise InvalidModel(f"cannot read the file ({exc.strerror or exc})") from None
    if not data:
        raise InvalidModel("the file is empty, not a torch.export .pt2 archive")
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise InvalidModel("not a torch.export .pt2 archive (not a zip file, or truncated)")
    records: dict[str, bytes] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            if not infos:
                raise InvalidModel("the .pt2 archive is empty")
            total = sum(i.file_size for i in infos)
            if total > _MAX_EXPANSION * len(data) + (1 << 20):
                raise InvalidModel("the .pt2 archive expands to an implausible size (zip bomb?)")
            roots = {i.filename.split("/", 1)[0] for i in infos}
            if len(roots) != 1 or any("/" not in i.filename for i in infos):
                raise InvalidModel("not a torch.export .pt2 archive (entries are not under one root folder)")
            for info in infos:
                if info.is_dir():
                    continue
                rel = info.filename.split("/", 1)[1]
                if rel.startswith("/") or ".." in rel.split("/"):
                    raise InvalidModel(f"the .pt2 archive holds an unsafe entry name {info.filename!r}")
                records[rel] = zf.read(info)
    except SncError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, NotImplementedError, ValueError, RuntimeError) as exc:
        raise InvalidModel(f"corrupt or truncated .pt2 archive ({_one_line(exc)})") from None
    except Exception as exc:  # zlib.error and friends
        raise InvalidModel(f"corrupt or truncated .pt2 archive ({_one_line(exc)})") from None

    if records.get("archive_format", b"").strip() != b"pt2":
        if "serialized_exported_program.json" in records or any(r.endswith(".pt") for r in records):
            raise InvalidModel("legacy torch.export archive with pickled state; snc never unpickles model files (re-save with torch >= 2.8)")
        raise InvalidModel("not a torch.export .pt2 archive (no 'archive_format' record)")

    keep: dict[str, bytes] = {}
    models, weight_cfg, const_cfg, samples = {}, {}, {}, set()
    for rel, blob in records.items():
        m = None
        if rel in _META_RECORDS:
            continue
        if rel in ("archive_format", "archive_version"):
            keep[rel] = blob
        elif (m := _RE_MODEL.fullmatch(rel)):
            models[m.group(1)] = blob
            keep[rel] = blob
        elif (m := _RE_WEIGHTS_CONFIG.fullmatch(rel)):
            weight_cfg[m.group(1)] = blob
            keep[rel] = blob
        elif (m := _RE_CONSTANTS_CONFIG.fullmatch(rel)):
            const_cfg[m.group(1)] = blob
            keep[rel] = blob
        elif _RE_WEIGHT.fullmatch(rel) or _RE_CONSTANT.fullmatch(rel):
            keep[rel] = blob
        elif (m := _RE_SAMPLE_INPUTS.fullmatch(rel)):
            samples.add(m.group(1))  # a pickle of the example inputs: never read, replaced below
        elif rel.startswith("extra/"):
            continue  # free-form user files; not needed
        else:
            raise InvalidModel(f"the .pt2 archive holds {_describe_refused(rel)}; snc refuses to load it")
    if "model" not in models:
        raise InvalidModel("the .pt2 archive holds no exported program ('models/model.json')")
    for model, blob in models.items():
        if model not in weight_cfg or model not in const_cfg:
            raise InvalidModel(f"the .pt2 archive lacks the weights or constants table of program {model!r}")
        _check_payload_config(weight_cfg[model], "weights", "weight_", "data/weights/", keep)
        _check_payload_config(const_cfg[model], "constants", "tensor_", "data/constants/", keep)
        try:
            program = json.loads(blob)
        except ValueError as exc:
            raise InvalidModel(f"program {model!r} is not valid JSON ({exc})") from None
        for expr in _expr_strings(program):
            if not _safe_sym_expr(expr):
                raise InvalidModel(f"program {model!r} holds a symbolic shape expression snc will not evaluate: {str(expr)[:80]!r}")
        keep[f"data/sample_inputs/{model}.pt"] = b""

    from torch.export.pt2_archive._package import PT2ArchiveWriter

    buffer = io.BytesIO()
    with PT2ArchiveWriter(buffer) as writer:
        for rel, blob in keep.items():
            writer.write_bytes(rel, blob)
    return buffer.getvalue()


def _describe_refused(rel: str) -> str:
    if rel.startswith("data/aotinductor/") or rel.startswith("data/executorch") or rel.startswith("data/mtia"):
        return f"compiled code ({rel!r})"
    if "custom_obj_" in rel or "opaque_obj_" in rel:
        return f"a pickled object constant ({rel!r})"
    if rel.endswith(".pt") or rel.endswith(".pkl"):
        return f"a pickled payload ({rel!r})"
    return f"an unexpected entry {rel!r}"


def _check_payload_config(blob: bytes, what: str, prefix: str, folder: str, keep: dict[str, bytes]) -> None:
    try:
        config = json.loads(blob)
    except ValueError as exc:
        raise InvalidModel(f"the {what} table is not valid JSON ({exc})") from None
    entries = config.get("config") if isinstance(config, dict) else None
    if not isinstance(entries, dict):
        raise InvalidModel(f"the {what} table has no 'config' mapping")
    for fqn, meta in entries.items():
        if not isinstance(meta, dict):
            raise InvalidModel(f"the {what} table entry {fqn!r} is malformed")
        if meta.get("use_pickle") is not False:
            raise InvalidModel(f"{what} entry {fqn!r} is stored as a pickle (use_pickle); snc never unpickles model files")
        path_name = meta.get("path_name")
        if not isinstance(path_name, str) or not re.fullmatch(rf"{prefix}\d+", path_name):
            raise InvalidModel(f"{what} entry {fqn!r} points at {path_name!r}, which is not a raw tensor record")
        if folder + path_name not in keep:
            raise InvalidModel(f"{what} entry {fqn!r} points at the missing record {folder + path_name!r}")
        if not isinstance(meta.get("tensor_meta"), dict):
            raise InvalidModel(f"{what} entry {fqn!r} has no tensor metadata")


class _PickleRefused(Exception):
    pass


_LOAD_LOCK = threading.Lock()


def _refuse_torch_load(*args: Any, **kwargs: Any) -> Any:
    raise _PickleRefused("torch.load was called while loading a .pt2 archive")


def _load_sanitized(archive: bytes) -> "torch.export.ExportedProgram":
    """torch.export.load on the rebuilt archive, with torch.load disabled (defence in depth:
    the rebuilt archive holds nothing torch would unpickle)."""
    export_log = logging.getLogger("torch.export")
    with _LOAD_LOCK:
        original = torch.load
        level = export_log.level
        torch.load = _refuse_torch_load  # type: ignore[assignment]
        export_log.setLevel(logging.ERROR)  # torch logs a traceback before its legacy fallback
        try:
            return torch.export.load(io.BytesIO(archive))
        except _PickleRefused:
            raise InvalidModel("the archive asks torch to unpickle data; snc never unpickles model files") from None
        except Exception as exc:
            if isinstance(exc.__context__, _PickleRefused) or isinstance(exc.__cause__, _PickleRefused):
                raise InvalidModel("the archive asks torch to unpickle data; snc never unpickles model files") from None
            raise InvalidModel(f"torch could not load the exported program ({_one_line(exc)})") from None
        finally:
            torch.load = original  # type: ignore[assignment]
            export_log.setLevel(level)
