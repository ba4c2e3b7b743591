"""The base class of every IR node, and the shape arithmetic the node kinds share.

A node says *what* it computes (its docstring gives the equations, its fields the symbols);
backends decide *how*. Shapes never include the batch dimension.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

import numpy as np

from snc.errors import InvalidGraph, ShapeError

Shape = tuple[int, ...]

# What a node is, for the passes and backends that dispatch on it.
INPUT = "input"  # a source of the network (analog values or spikes)
NEURON = "neuron"  # a stateful spiking population
READOUT = "readout"  # the non-spiking output population
LINEAR = "linear"  # a stateless linear synaptic operator (no bias once converted)
ANN = "ann"  # a layer of the source ANN that conversion removes (ReLU, MaxPool, BatchNorm, ...)
HOST = "host"  # a stateless non-linear operator the host evaluates on a direct (analog) input
COMPUTE = "compute"  # a non-spiking dense-compute operator of a sequence model (norm, attention, ...)
CODER = "coder"  # turns analog activations into spike trains (spike coding of a projection's input)


@dataclass(eq=False)
class Node:
    """Base of all node kinds. ``meta`` holds what later passes attach (calibration statistics,
    notes, core assignment); it must stay JSON-serialisable apart from numpy arrays."""

    kind: ClassVar[str] = "Node"
    role: ClassVar[str] = LINEAR
    #: (minimum, maximum) number of inputs; None means unbounded.
    arity: ClassVar[tuple[int, int | None]] = (1, 1)

    meta: dict = field(default_factory=dict, kw_only=True)

    # --- shapes -----------------------------------------------------------------------------
    def infer_shape(self, name: str, inputs: list[Shape]) -> Shape:
        """Output shape given the input shapes (ordered as the node's inputs)."""
        raise NotImplementedError

    # --- parameter checks -------------------------------------------------------------------
    def check(self, name: str) -> None:
        """Validate parameters that do not depend on neighbours (finite weights, positive
        thresholds, known enum values). Raises InvalidGraph naming the node."""
        for f, value in self.array_fields():
            if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
                raise InvalidGraph(f"{f} holds {bad} non-finite value(s) (NaN or inf)", node=name)

    # --- helpers ----------------------------------------------------------------------------
    def array_fields(self) -> Iterator[tuple[str, np.ndarray]]:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                yield f.name, value

    def params(self) -> dict[str, Any]:
        """Scalar fields for printing (arrays summarised by their shape)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "meta":
                continue
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray):
                out[f.name] = f"array{tuple(value.shape)}"
            elif value is not None and dataclasses.is_dataclass(value):
                out[f.name] = type(value).__name__
            elif value is not None:
                out[f.name] = value
        return out

    def replace(self, **changes: Any) -> "Node":
        """A copy with some fields changed (meta is copied, not shared)."""
        changes.setdefault("meta", dict(self.meta))
        return dataclasses.replace(self, **changes)


def expect_arity(node: Node, name: str, inputs: list[Shape]) -> None:
    lo, hi = node.arity
    if len(inputs) < lo or (hi is not None and len(inputs) > hi):
        want = f"{lo}" if lo == hi else f"{lo}..{hi if hi is not None else 'n'}"
        raise InvalidGraph(f"{node.kind} takes {want} input(s), got {len(inputs)}", node=name)


def pair(value: int | tuple[int, ...] | list[int], what: str) -> tuple[int, int]:
    """Normalise an int or a 2-sequence to a pair of ints."""
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    seq = tuple(int(v) for v in value)
    if len(seq) != 2:
        raise ValueError(f"{what} must be an int or a pair, got {value!r}")
    return seq  # type: ignore[return-value]


def padding4(value: int | tuple[int, ...] | list[int]) -> tuple[int, int, int, int]:
    """Normalise padding to (top, left, bottom, right); accepts p, (ph, pw) or 4 values."""
    if isinstance(value, (int, np.integer)):
        p = int(value)
        return p, p, p, p
    seq = tuple(int(v) for v in value)
    if len(seq) == 2:
        return seq[0], seq[1], seq[0], seq[1]
    if len(seq) == 4:
        return seq  # type: ignore[return-value]
    raise ValueError(f"padding must be an int, a pair or 4 values, got {value!r}")


def window_output(size: int, kernel: int, stride: int, pad_lo: int, pad_hi: int, dilation: int = 1) -> int:
    """Output length of a sliding window (floor mode): floor((n + p0 + p1 - d(k-1) - 1)/s) + 1."""
    return (size + pad_lo + pad_hi - dilation * (kernel - 1) - 1) // stride + 1


def spatial_output(
    name: str,
    kind: str,
    in_shape: Shape,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int, int, int],
    dilation: tuple[int, int] = (1, 1),
) -> tuple[int, int]:
    if len(in_shape) != 3:
        raise ShapeError(f"{kind} expects a (C, H, W) input, got {in_shape}", node=name)
    _, h, w = in_shape
    oh = window_output(h, kernel[0], stride[0], padding[0], padding[2], dilation[0])
    ow = window_output(w, kernel[1], stride[1], padding[1], padding[3], dilation[1])
    if oh < 1 or ow < 1:
        raise ShapeError(
            f"{kind} with kernel {kernel}, stride {stride}, padding {padding} does not fit input {in_shape}",
            node=name,
        )
    return oh, ow


def as_shape(value: Any) -> Shape:
    return tuple(int(v) for v in value)
