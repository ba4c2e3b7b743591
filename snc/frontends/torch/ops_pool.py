"""aten operators: max, average, adaptive and global pooling."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.fx

from snc.ir import AvgPool2d, Flatten, MaxPool2d, SumPool2d
from snc.ir.node import window_output


from .common import _Opaque, _Tensor, _handles, _norm_dim, _pair, _spatial
if TYPE_CHECKING:  # annotations only (the converter imports this module)
    from .converter import _Converter


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
