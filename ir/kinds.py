"""The registry of node kinds: the name stored in artifacts -> the dataclass."""
from __future__ import annotations

from .ann import BatchNorm, HostMaxPool2d, MaxPool2d, ReLU, ScaleShift
from .io import Input, Readout
from .neurons import IF, LIF
from .node import Node
from .sequence import SEQUENCE_KINDS
from .synapses import Add, AvgPool2d, Concat, Conv2d, Delay, Dense, Flatten, Reshape, Scale, SumPool2d, Transpose

KINDS: dict[str, type[Node]] = {
    cls.kind: cls
    for cls in (
        Input, Readout, IF, LIF,
        Dense, Conv2d, SumPool2d, AvgPool2d, Flatten, Reshape, Transpose, Concat, Add, Scale, Delay,
        ReLU, MaxPool2d, BatchNorm, ScaleShift, HostMaxPool2d,
        *SEQUENCE_KINDS,
    )
}

# Their traits (ir/models.py), registered once the table exists.
from .neurons import _register_builtins  # noqa: E402

_register_builtins()
