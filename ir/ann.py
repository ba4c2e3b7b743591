"""Layers of the source ANN that the conversion passes remove or replace.

Frontends produce them; ``fold_batchnorm``, ``fold_affine`` and ``convert`` turn them into
spiking populations and linear operators. A graph that still holds one is an ANN graph.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from snc.errors import InvalidGraph, ShapeError

from .node import ANN, HOST, Node, Shape, pair, padding4, spatial_output


@dataclass(eq=False)
class ReLU(Node):
    """Rectifier: y = min(max(x, 0), ceiling); ceiling None means no upper bound (ONNX Clip(0, c))."""

    kind = "ReLU"
    role = ANN

    ceiling: float | None = None

    def infer_shape(self, name: str, inputs: list[Shape]) -> Shape:
        (shape,) = inputs
        return tuple(shape)

    def check(self, name: str) -> None:
        super().check(name)
        if self.ceiling is not None and not (np.isfinite(self.ceiling) and self.ceiling > 0):
            raise InvalidGraph(f"ReLU ceiling must be finite and > 0, got {self.ceiling}", node=name)


@dataclass(eq=False)
class MaxPool2d(Node):
    """Maximum over k x k windows per channel; padded positions never win (-inf padding)."""

    kind = "MaxPool2d"
    role = ANN

    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)

    def __post_init__(self) -> None:
        self.kernel = pair(self.kernel, "kernel")
        self.stride = pair(self.stride, "stride")
        self.padding = padding4(self.padding)
        self.dilation = pair(self.dilation, "dilation")

    def infer_shape(self, name: str, inputs: list[Shape]) -> Shape:
        (shape,) = inputs
        oh, ow = spatial_output(name, self.kind, shape, self.kernel, self.stride, self.padding, self.dilation)
        return (int(shape[0]), oh, ow)

    def check(self, name: str) -> None:
        super().check(name)
        if min(self.kernel) < 1 or min(self.stride) < 1 or min(self.dilation) < 1 or min(self.padding) < 0:
            raise InvalidGraph("kernel, stride and dilation must be >= 1 and padding >= 0", node=name)
        pt, pl, pb, pr = self.padding
        span = ((self.kernel[0] - 1) * self.dilation[0] + 1, (self.kernel[1] - 1) * self.dilation[1] + 1)
        if max(pt, pb) >= span[0] or max(pl, pr) >= span[1]:
            raise InvalidGraph(f"padding {self.padding} leaves windows with nothing but padding", node=name)


@dataclass(eq=False)
class HostMaxPool2d(MaxPool2d):
    """``MaxPool2d`` evaluated by the host on a direct (analog) input, before the first spiking
    population: the host computes the linear operators between the input and this node, takes
    the window maxima, and programs the result as that population's per-sample input current.

    ``convert`` puts it in place of a max pool after a ReLU when the ReLU's input comes from
    direct inputs only (relu(max x) = max(relu x), and an IF neuron's spike count is monotone in
    its constant input, so the pooled neuron fires as often as the window's most active one).
    The graph validator allows it only on paths from direct inputs through linear operators."""

    kind = "HostMaxPool2d"
    role = HOST


@dataclass(eq=False)
class BatchNorm(Node):
    """Inference-mode batch normalisation over channel axis 0:

        y[c, ...] = gamma[c] * (x[c, ...] - mean[c]) / sqrt(var[c] + eps) + beta[c]
    """

    kind = "BatchNorm"
    role = ANN

    mean: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    var: np.ndarray = field(default_factory=lambda: np.ones(0, np.float32))
    gamma: np.ndarray = field(default_factory=lambda: np.ones(0, np.float32))
    beta: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    eps: float = 1e-5

    def __post_init__(self) -> None:
        for f in ("mean", "var", "gamma", "beta"):
            setattr(self, f, np.asarray(getattr(self, f), dtype=np.float32))

    def infer_shape(self, name: str, inputs: list[Shape]) -> Shape:
        (shape,) = inputs
        if not shape or shape[0] != self.mean.shape[0]:
            raise ShapeError(f"BatchNorm over {self.mean.shape[0]} channels fed with shape {tuple(shape)}", node=name)
        return tuple(shape)

    def check(self, name: str) -> None:
        super().check(name)
        n = self.mean.shape
        if any(getattr(self, f).shape != n for f in ("var", "gamma", "beta")) or len(n) != 1:
            raise InvalidGraph("BatchNorm mean, var, gamma and beta must be 1-D of equal length", node=name)
        if np.any(self.var + self.eps <= 0):
            raise InvalidGraph("BatchNorm variance + eps must be > 0", node=name)

    def affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, shift) per channel such that y = scale * x + shift."""
        scale = self.gamma / np.sqrt(self.var.astype(np.float64) + self.eps)
        shift = self.beta - scale * self.mean
        return scale.astype(np.float32), shift.astype(np.float32)


@dataclass(eq=False)
class ScaleShift(Node):
    """Elementwise affine map by constants: y = x * scale + shift (both broadcastable to x).

    Frontends emit it for constant Sub/Mul/Div/Add (input normalisation inside a model).
    """

    kind = "ScaleShift"
    role = ANN

    scale: np.ndarray = field(default_factory=lambda: np.ones((), np.float32))
    shift: np.ndarray = field(default_factory=lambda: np.zeros((), np.float32))

    def __post_init__(self) -> None:
        self.scale = np.asarray(self.scale, dtype=np.float32)
        self.shift = np.asarray(self.shift, dtype=np.float32)

    def infer_shape(self, name: str, inputs: list[Shape]) -> Shape:
        (shape,) = inputs
        try:
            out = np.broadcast_shapes(tuple(shape), self.scale.shape, self.shift.shape)
        except ValueError:
            raise ShapeError(
                f"constants of shapes {self.scale.shape}, {self.shift.shape} do not broadcast to {tuple(shape)}", node=name
            ) from None
        if tuple(out) != tuple(shape):
            raise ShapeError(f"constants would change the shape {tuple(shape)} to {tuple(out)}", node=name)
        return tuple(shape)
