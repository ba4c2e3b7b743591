"""Dense, batched implementations of the IR's stateless node kinds (torch, float32).

One table from node kind to handler, shared by the analog (ANN / rate-limit) evaluator and the
event simulator's dense path. A handler takes the node and its input tensors, each shaped
(N, *sample_shape) in the order of the node's inputs, and returns (N, *output_shape).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from snc.ir import Node

Handler = Callable[[Node, list[torch.Tensor]], torch.Tensor]


def _t(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    a = np.ascontiguousarray(a)
    if not a.flags.writeable:  # torch.from_numpy warns on read-only memory
        a = a.copy()
    return torch.from_numpy(a).to(like.dtype)


def _pad(x: torch.Tensor, padding: tuple[int, int, int, int], value: float = 0.0) -> torch.Tensor:
    top, left, bottom, right = padding
    if top == left == bottom == right == 0:
        return x
    return F.pad(x, (left, right, top, bottom), value=value)


def dense(node, xs):
    (x,) = xs
    w = _t(node.weight, x)
    b = None if node.bias is None else _t(node.bias, x)
    return F.linear(x, w, b)


def conv2d(node, xs):
    (x,) = xs
    w = _t(node.weight, x)
    b = None if node.bias is None else _t(node.bias, x)
    top, left, bottom, right = node.padding
    if top == bottom and left == right:
        # Symmetric padding inside the convolution: the same sums as padding the input first
        # (the padded positions add exact zeros), without the padded copy.
        return F.conv2d(x, w, b, stride=node.stride, padding=(top, left), dilation=node.dilation, groups=node.groups)
    return F.conv2d(_pad(x, node.padding), w, b, stride=node.stride, dilation=node.dilation, groups=node.groups)


def shared_group_weight(node) -> np.ndarray | None:
    """The one (out_per_group, in_per_group, kh, kw) kernel of a grouped convolution whose groups
    all use the same weights, when on 0/1 input its sums are exact in any order: integer weights
    (small integer sums), or at most two non-zero weights per output (one rounding, and float
    addition is commutative). The spiking max-pool construction's convolutions are such. Else None."""
    g = node.groups
    w = node.weight
    if g <= 1 or node.bias is not None or w.shape[0] % g:
        return None
    per = w.shape[0] // g
    flat = w.reshape(g, -1)
    if not np.array_equal(flat, np.broadcast_to(flat[:1], flat.shape)):
        return None
    w1 = w[:per]
    few_terms = int(np.count_nonzero(w1.reshape(per, -1), axis=1).max()) <= 2
    if not few_terms and not (np.array_equal(w1, np.round(w1)) and np.abs(w1).sum() < 2**20):
        return None
    return w1


def shared_group_conv2d(node, x: torch.Tensor, w1: np.ndarray, out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """``conv2d`` for a grouped convolution whose groups share the kernel ``w1``
    (shared_group_weight) on 0/1 input (spikes): the same exact sums as the grouped convolution,
    without torch's slow grouped kernels: a few strided views of the input added when the kernel
    has few non-zero weights (or the input is integer), else one ungrouped convolution over
    (samples x groups).

    Integer input (spikes as int8, or integer sums of them) with an integer ``w1`` and no padding
    stays integer: the sums are accumulated in ``out_dtype``, which the caller chose wide enough,
    and are exactly the float sums they replace, without a float32 copy of the spikes."""
    g = node.groups
    rows, channels, h, w = x.shape
    per, m, kh, kw = w1.shape
    top, left, bottom, right = node.padding
    terms = np.argwhere(w1 != 0)
    integer = not x.is_floating_point()
    if integer and (any(node.padding) or out_dtype is None):
        raise ValueError("an integer shared-group convolution needs no padding and an output dtype")
    if (integer or len(terms) <= 2) and not any(node.padding):
        # A few strided views of the input, added: no convolution at all.
        (sh, sw), (dh, dw) = node.stride, node.dilation
        ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
        xv = x.reshape(rows, g, m, h, w)
        out = torch.zeros((rows, g, per, ho, wo), dtype=out_dtype if integer else x.dtype)
        for u, j, i, l in terms:
            view = xv[:, :, j, i * dh: i * dh + sh * (ho - 1) + 1: sh, l * dw: l * dw + sw * (wo - 1) + 1: sw]
            weight = w1[u, j, i, l]
            out[:, :, u].add_(view, alpha=int(weight) if integer else float(weight))
        return out.reshape(rows, g * per, ho, wo)
    symmetric = top == bottom and left == right
    xb = x if symmetric else _pad(x, node.padding)
    hb, wb = xb.shape[2:]
    out = F.conv2d(xb.reshape(rows * g, m, hb, wb), _t(w1, x), None, stride=node.stride,
                   padding=(top, left) if symmetric else (0, 0), dilation=node.dilation)
    return out.reshape(rows, g * per, out.shape[2], out.shape[3])


def sum_pool2d(node, xs):
    (x,) = xs
    return F.avg_pool2d(_pad(x, node.padding), node.kernel, node.stride, divisor_override=1)


def avg_pool2d(node, xs):
    (x,) = xs
    total = F.avg_pool2d(_pad(x, node.padding), node.kernel, node.stride, divisor_override=1)
    if node.count_include_pad or not any(node.padding):
        return total / float(node.kernel[0] * node.kernel[1])
    ones = torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype)
    count = F.avg_pool2d(_pad(ones, node.padding), node.kernel, node.stride, divisor_override=1)
    return total / count


def flatten(node, xs):
    (x,) = xs
    return x.reshape(x.shape[0], -1)


def reshape(node, xs):
    (x,) = xs
    return x.reshape((x.shape[0],) + tuple(node.shape))


def transpose(node, xs):
    (x,) = xs
    return x.permute((0,) + tuple(p + 1 for p in node.perm))


def concat(node, xs):
    return torch.cat(xs, dim=node.axis + 1)


def add(node, xs):
    out = xs[0]
    for x in xs[1:]:
        out = out + x
    return out


def scale(node, xs):
    (x,) = xs
    return x * _t(node.scale, x)


def relu(node, xs):
    (x,) = xs
    if node.ceiling is None:
        return torch.clamp_min(x, 0.0)
    return torch.clamp(x, 0.0, float(node.ceiling))


def max_pool2d(node, xs):
    (x,) = xs
    return F.max_pool2d(_pad(x, node.padding, float("-inf")), node.kernel, node.stride, dilation=node.dilation)


def batch_norm(node, xs):
    (x,) = xs
    s, b = node.affine()
    view = (1, -1) + (1,) * (x.ndim - 2)
    return x * _t(s, x).reshape(view) + _t(b, x).reshape(view)


def scale_shift(node, xs):
    (x,) = xs
    return x * _t(node.scale, x) + _t(node.shift, x)


HANDLERS: dict[str, Handler] = {
    "Dense": dense,
    "Conv2d": conv2d,
    "SumPool2d": sum_pool2d,
    "AvgPool2d": avg_pool2d,
    "Flatten": flatten,
    "Delay": lambda node, xs: xs[0],  # values, not time: the simulator applies the shift
    "Reshape": reshape,
    "Transpose": transpose,
    "Concat": concat,
    "Add": add,
    "Scale": scale,
    "ReLU": relu,
    "MaxPool2d": max_pool2d,
    "HostMaxPool2d": max_pool2d,
    "BatchNorm": batch_norm,
    "ScaleShift": scale_shift,
}

from .sequence_ops import HANDLERS as _SEQUENCE_HANDLERS  # noqa: E402  (the sequence-model kinds)

HANDLERS.update(_SEQUENCE_HANDLERS)


def apply(node: Node, xs: list[torch.Tensor]) -> torch.Tensor:
    """Apply a stateless node to batched inputs."""
    return HANDLERS[node.kind](node, xs)
