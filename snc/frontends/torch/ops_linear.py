"""aten operators: convolutions, linear layers and matrix products, batch normalisation."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.fx

from snc.ir import BatchNorm, Conv2d, Dense
from snc.ir.node import padding4


from .common import _Opaque, _Tensor, _handles, _pair, _spatial
if TYPE_CHECKING:  # annotations only (the converter imports this module)
    from .converter import _Converter


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
