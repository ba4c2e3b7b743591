"""aten operators: reshape/view/flatten, permute/transpose, cat, identity-like operators."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.fx

from snc.ir import Concat, Flatten, Reshape, Transpose


from .common import _Opaque, _Tensor, _handles, _norm_dim
if TYPE_CHECKING:  # annotations only (the converter imports this module)
    from .converter import _Converter


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
