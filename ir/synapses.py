"""Synaptic operators: stateless linear maps between populations.

In a converted (spiking) graph they carry no bias (biases become constant currents of the
neurons they feed). Before conversion Dense and Conv2d may carry one: y = W x + b.
Every operator takes and returns tensors without the batch dimension.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from snc.errors import InvalidGraph, ShapeError

from .fixed_point import SynapseFixed
from .node import Node, Shape, as_shape, pair, padding4, spatial_output


def _f32(a: np.ndarray | None) -> np.ndarray | None:
    return None if a is None else np.asarray(a, dtype=np.float32)


@dataclass(eq=False)
class Dense(Node):
    """Fully connected synapses: y_i = sum_j W_ij x_j (+ b_i).

    weight: (n_out, n_in); bias: (n_out,) or None. The input must be 1-D (n_in,).
    """

    kind = "Dense"

    weight: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    bias: np.ndarray | None = None
    fixed: SynapseFixed | None = None

    def __post_init__(self) -> None:
        self.weight = _f32(self.weight)
        self.bias = _f32(self.bias)

    def infer_shape(self, name: str, inputs: list[Shape]) -> Shape:
        (shape,) = inputs
        n_out, n_in = self.weight.shape
        if tuple(shape) != (n_in,):
            raise ShapeError(f"Dense expects input ({n_in},), got {tuple(shape)}", node=name)
        return (n_out,)

    def check(self, name: str) -> None:
        super().check(name)
        if self.weight.ndim != 2:
            raise InvalidGraph(f"Dense weight must be 2-D, got shape {self.weight.shape}", node=name)
        if self.bias is not None and self.bias.shape != (self.weight.shape[0],):
            raise InvalidGraph(f"Dense bias shape {self.bias.shape} does not match {self.weight.shape[0]} outputs", node=name)


@dataclass(eq=False)
class Conv2d(Node):
    """2-D cross-correlation (torch/ONNX convention), zero padding:

        y[o, i, j] = sum_{c, m, n} W[o, c, m, n] x_pad[g(o)*Cg + c, i*sy + m*dy, j*sx + n*dx] (+ b[o])

    weight: (C_out, C_in / groups, kH, kW); padding (top, left, bottom, right).
    """

    kind = "Conv2d"

    weight: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 1, 1), np.float32))
    bias: np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    fixed: SynapseFixed | None = None

    def __post_init__(self) -> None:
        self.weight = _f32(self.weight)
        self.bias = _f32(self.bias)
        self.stride = pair(self.stride, "stride")
        self.padding = padding4(self.padding)
        self.dilation = pair(self.dilation, "dilation")
        self.groups = int(self.groups)

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weight.shape[2]), int(self.weight.shape[3])

    def infer_shape(self, name: str, inputs: list[Shape]) -> Shape:
        (shape,) = inputs
        c_out, c_in_g = self.weight.shape[:2]
        if len(shape) != 3 or shape[0] != c_in_g * self.groups:
            raise ShapeError(
                f"Conv2d expects ({c_in_g * self.groups}, H, W) input, got {tuple(shape)}", node=name
            )
        oh, ow = spatial_output(name, self.kind, shape, self.kernel, self.stride, self.padding, self.dilation)
        return (int(c_out), oh, ow)

    def check(self, name: str) -> None:
        super().check(name)
        if self.weight.ndim != 4:
            raise InvalidGraph(f"Conv2d weight must be 4-D, got shape {self.weight.shape}", node=name)
        if self.groups < 1 or self.weight.shape[0] % self.groups:
            raise InvalidGraph(f"groups={self.groups} does not divide {self.weight.shape[0]} output channels", node=name)
        if min(self.stride) < 1 or min(self.dilation) < 1 or min(self.padding) < 0:
            raise InvalidGraph("stride and dilation must be >= 1 and padding >= 0", node=name)
        if self.bias is not None and self.bias.shape != (self.weight.shape[0],):
            raise InvalidGraph(f"Conv2d bias shape {self.bias.shape} does not match {self.weight.shape[0]} channels", node=name)


@dataclass(eq=False)
class SumPool2d(Node):
    """Sum over k x k windows, per channel, zero padding: y[c,i,j] = sum_{m,n} x_pad[c, i*s+m, j*s+n]."""

    kind = "SumPool2d"

    kernel: tuple[int, int] = (2, 2)
    stride: tuple[int, int] = (2, 2)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    fixed: SynapseFixed | None = None

    def __post_init__(self) -> None:
        self.kernel = pair(self.kernel, "kernel")
        self.stride = pair(self.stride, "stride")
        self.padding = padding4(self.padding)

    def infer_shape(self, name: str, inputs: list[Shape]) -> Shape:
        (shape,) = inputs
        oh, ow = spatial_output(name, self.kind, shape, self.kernel, self.stride, self.padding)
        return (int(shape[0]), oh, ow)

    def check(self, name: str) -> None:
        super().check(name)
        if min(self.kernel) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise InvalidGraph("kernel and stride must be >= 1 and padding >= 0", node=name)
        pt, pl, pb, pr = self.padding
        if max(pt, pb) >= self.kernel[0] or max(pl, pr) >= self.kernel[1]:
            # Otherwise some windows would hold nothing but padding.
            raise InvalidGraph(f"padding {self.padding} must be smaller than the kernel {self.kernel}", node=name)


@dataclass(eq=False)
class AvgPool2d(SumPool2d):
    """Mean over k x k windows, per channel, zero padding.

    count_include_pad=True divides every window by kH*kW; False divides by the number of
    window positions that fall inside the unpadded input (ONNX/torch semantics).
    """

    kind = "AvgPool2d"

    count_include_pad: bool = True


@dataclass(eq=False)
class Delay(Node):
    """Synaptic (axonal) delay of ``steps`` time steps: y[t] = x[t - steps], zero before the
    first step. On a projection it delays every spike by ``steps`` (Loihi supports such delays);
    in the rate limit (the ANN view) it is the identity."""

    kind = "Delay"

    steps: int = 1

    def __post_init__(self) -> None:
        self.steps = int(self.steps)

    def infer_shape(self, name: str, inputs: list[Shape]) -> Shape:
        (shape,) = inputs
        return tuple(shape)

    def check(self, name: str) -> None:
        super().check(name)
        if self.steps < 1:
            raise InvalidGraph(f"a delay must be at least 1 step, got {self.steps}", node=name)


@dataclass(eq=False)
class Flatten(Node):
    """Row-major (C-order) flattening of the whole sample: y = x.reshape(-1)."""

    kind = "Flatten"

    def infer_shape(self, name: str, inputs: list[Shape]) -> Shape:
        (shape,) = inputs
        return (int(np.prod(shape)),)


@dataclass(eq=False)
class Reshape(Node):
    """Row-major reshape to ``shape`` (same number of elements)."""

    kind = "Reshape"

    shape: Shape = ()

    def __post_init__(self) -> None:
        self.shape = as_shape(self.shape)

    def infer_shape(self, name: str, inputs: list[Shape]) -> Shape:
        (shape,) = inputs
        if int(np.prod(shape)) != int(np.prod(self.shape)):
            raise ShapeError(f"cannot reshape {tuple(shape)} to {self.shape}", node=name)
        return self.shape


@dataclass(eq=False)
class Transpose(Node):
    """Permutation of the sample axes: y = x.transpose(perm) (perm excludes the batch axis)."""

    kind = "Transpose"

    perm: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self.perm = as_shape(self.perm)

    def infer_shape(self, name: str, inputs: list[Shape]) -> Shape:
        (shape,) = inputs
        if sorted(self.perm) != list(range(len(shape))):
            raise ShapeError(f"perm {self.perm} is not a permutation of the {len(shape)} axes of {tuple(shape)}", node=name)
        return tuple(int(shape[p]) for p in self.perm)


@dataclass(eq=False)
class Concat(Node):
    """Concatenation of the inputs, in order, along ``axis`` (0 = first sample axis)."""

    kind = "Concat"
    arity = (1, None)

    axis: int = 0

    def infer_shape(self, name: str, inputs: list[Shape]) -> Shape:
        first = tuple(inputs[0])
        axis = self.axis
        if not 0 <= axis < len(first):
            raise ShapeError(f"axis {axis} out of range for shape {first}", node=name)
        total = 0
        for s in inputs:
            s = tuple(s)
            if len(s) != len(first) or any(a != b for i, (a, b) in enumerate(zip(s, first)) if i != axis):
                raise ShapeError(f"cannot concatenate shapes {[tuple(x) for x in inputs]} on axis {axis}", node=name)
            total += s[axis]
        out = list(first)
        out[axis] = total
        return tuple(out)


@dataclass(eq=False)
class Add(Node):
    """Elementwise sum of the inputs (all of the same shape): residual joins."""

    kind = "Add"
    arity = (1, None)

    def infer_shape(self, name: str, inputs: list[Shape]) -> Shape:
        first = tuple(inputs[0])
        for s in inputs[1:]:
            if tuple(s) != first:
                raise ShapeError(f"cannot add shapes {[tuple(x) for x in inputs]}", node=name)
        return first


@dataclass(eq=False)
class Scale(Node):
    """Elementwise gain: y = g * x, with g a scalar or an array broadcastable to the input."""

    kind = "Scale"

    scale: np.ndarray = field(default_factory=lambda: np.ones((), np.float32))
    fixed: SynapseFixed | None = None

    def __post_init__(self) -> None:
        self.scale = np.asarray(self.scale, dtype=np.float32)

    def infer_shape(self, name: str, inputs: list[Shape]) -> Shape:
        (shape,) = inputs
        try:
            out = np.broadcast_shapes(tuple(shape), self.scale.shape)
        except ValueError:
            raise ShapeError(f"scale of shape {self.scale.shape} does not broadcast to {tuple(shape)}", node=name) from None
        if tuple(out) != tuple(shape):
            raise ShapeError(f"scale of shape {self.scale.shape} would change the shape {tuple(shape)}", node=name)
        return tuple(shape)
