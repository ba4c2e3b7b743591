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
    "Reshape": reshape,
    "Transpose": transpose,
    "Concat": concat,
    "Add": add,
    "Scale": scale,
    "ReLU": relu,
    "MaxPool2d": max_pool2d,
    "BatchNorm": batch_norm,
    "ScaleShift": scale_shift,
}


def apply(node: Node, xs: list[torch.Tensor]) -> torch.Tensor:
    """Apply a stateless node to batched inputs."""
    return HANDLERS[node.kind](node, xs)
