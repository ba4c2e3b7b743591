"""Shared pieces of the torch.export frontend: the values flowing through the conversion, the handler registry, small helpers."""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
import torch.fx

from snc.errors import InvalidModel, UnsupportedOperator
from snc.ir import Node


if TYPE_CHECKING:  # annotations only (the converter imports this module)
    from .converter import _Converter


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


def _example_tensor(example_input: Any) -> torch.Tensor:
    if isinstance(example_input, np.ndarray) and example_input.dtype.kind in "iu":  # token ids
        x = torch.from_numpy(np.ascontiguousarray(example_input, dtype=np.int64))
    elif isinstance(example_input, np.ndarray):
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
