"""The one affine folder: y = x * scale + shift absorbed into the node that produced x.

Frontends (the constant Sub/Mul/Div/Add of a traced model) and the ``fold-affine`` pass use
these two rules and nothing else:

* ``compose``: a ScaleShift followed by another affine map is one ScaleShift,
  (x s1 + t1) s + t = x (s1 s) + (t1 s + t), in the dtype of the operands given;
* ``into_linear``: after a Dense / Conv2d, constants that are one value per output channel fold
  into its weights and bias, W' = diag(s) W, b' = b s + t (float64, stored as float32).
  Frontends pass ``scale_weights=False``: they fold a shift into a bias but leave a model's
  weights as it wrote them (the pass folds scales at compile time).
"""
from __future__ import annotations

import numpy as np

from .ann import ScaleShift


def per_channel(a, shape: tuple[int, ...]) -> np.ndarray | None:
    """Constants ``a`` broadcast to ``shape`` as one float64 value per channel (axis 0), or None
    when they vary along other axes (or the shape is empty)."""
    full = np.broadcast_to(np.asarray(a), shape)
    if full.size == 0:
        return None
    flat = full.reshape(shape[0], -1)
    if np.all(flat == flat[:, :1]):
        return flat[:, 0].astype(np.float64)
    return None


def compose(first: ScaleShift, scale, shift, meta: dict | None = None) -> ScaleShift:
    """``first`` followed by y = x * scale + shift, as one ScaleShift (meta: ``first``'s unless given)."""
    return ScaleShift(scale=first.scale * scale, shift=first.shift * scale + shift,
                      meta=dict(first.meta if meta is None else meta))


def into_linear(node, scale, shift, shape: tuple[int, ...], *, scale_weights: bool = True):
    """The Dense / Conv2d ``node`` (output ``shape``) followed by y = x * scale + shift, as one
    node; None when the constants are not per output channel (or, with ``scale_weights``
    False, when the scale is not 1)."""
    s = per_channel(scale, shape)
    t = per_channel(shift, shape)
    if s is None or t is None or (not scale_weights and np.any(s != 1.0)):
        return None
    bias = (node.bias if node.bias is not None else 0.0) * s + t
    if not scale_weights:
        return node.replace(bias=np.asarray(bias, np.float32))
    view = (-1,) + (1,) * (node.weight.ndim - 1)
    return node.replace(weight=(node.weight * s.reshape(view)).astype(np.float32), bias=np.asarray(bias, np.float32))
