"""aten operators: elementwise arithmetic with constants (folded into ScaleShift) and residual adds; symbolic sizes."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.fx

from snc.ir import Add, Conv2d, Dense, ScaleShift, affine


from .common import _Opaque, _Tensor, _handles, _norm_dim
if TYPE_CHECKING:  # annotations only (the converter imports this module)
    from .converter import _Converter


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
            entry.node = affine.compose(node, scale, shift)
            return _Tensor(x.name, x.shape, c.fx.name)
        if isinstance(node, (Dense, Conv2d)):
            folded = affine.into_linear(node, scale, shift, x.shape, scale_weights=False)
            if folded is not None:
                entry.node = folded
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
