"""The torch.export graph walk: from_torch / from_exported, the converter, and the supported-operator list (handlers register themselves from the ops_* modules)."""
from __future__ import annotations

import importlib
import logging
import operator
from typing import Any

import numpy as np
import torch
import torch.fx

from snc.errors import InvalidModel, SncError, UnsupportedOperator
from snc.ir import Graph, Input, Node

logger = logging.getLogger(__name__)

from .common import _Entry, _HANDLERS, _Opaque, _SCALAR_OPS, _SOFTMAX, _Tensor, _ancestors, _example_tensor, _flatten, _functional, _norm_dim, _one_line, _op_name, _owner


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
    from .sequence import from_exported_sequence, is_token_program

    if is_token_program(ep):  # a language model: token ids in, logits out (snc.ir.sequence)
        return from_exported_sequence(ep, name or "torch_model")
    return _Converter(ep).run(name or "torch_model")


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


# The operator families register their handlers (common._handles) when imported.
for _family in ("ops_linear", "ops_activation", "ops_pool", "ops_shape", "ops_arith"):
    importlib.import_module(f".{_family}", __package__)

SUPPORTED_OPS: list[str] = sorted(set(_HANDLERS) | {f"{op} (trailing, dropped)" for op in ("aten.softmax", "aten.log_softmax")})
