"""Spiking neuron populations.

A population receives the sum of the outputs of all its input operators (residual connections
are several operators feeding one population) as an input current ``I[t]`` each time step and
emits binary spikes ``s[t]``. Time is discrete: one step is ``dt`` (the unit of every time
constant below); currents and voltages are in the units of the weights feeding the population.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from snc.errors import InvalidGraph, ShapeError

from .fixed_point import NeuronFixed
from .node import NEURON, Node, Shape, as_shape

RESETS = ("subtract", "zero")
# The neuron models snc's own code implements (simulator, quantize, Lava, rate limit); other
# models run through the traits they declare (ir/models.py).
CORE_MODELS = ("IF", "LIF")


def require_model(node, name: str, consumer: str, capability: str = "float"):
    """The registered model of a neuron population when ``consumer`` can run it (ir/models.py:
    built-in code, or the traits ``capability`` needs); else ``UnsupportedOperator`` naming the
    node and the kind: never a silent fall-through to IF behaviour. None for other nodes."""
    from .models import require

    return require(node, name, consumer, capability)


def is_builtin(node) -> bool:
    """Whether snc's own code implements this population's dynamics (IF, LIF)."""
    return node.role == NEURON and node.kind in CORE_MODELS and type(node) in (IF, LIF)


def _threshold_array(value: float | np.ndarray) -> float | np.ndarray:
    if isinstance(value, np.ndarray):
        return value.astype(np.float32)
    return float(value)


@dataclass(eq=False)
class IF(Node):
    """Integrate-and-fire population (no leak).

        v[t] = v[t-1] + I[t] + b
        s[t] = v[t] > theta                       (strict, as on Loihi)
        reset on spike: v -= theta ('subtract')  or  v = 0 ('zero')
        refractory R: for R steps after a spike v stays at its reset value and I is ignored.

    shape:      population shape (no batch dimension).
    threshold:  theta, a scalar or an array broadcastable to ``shape`` (units of I).
    bias:       constant current b per neuron (array of ``shape``) or None for zero.
    keep:       which neurons exist (bool array of ``shape``), None for all. A removed neuron
                (pruned) never spikes and has no synapses; the tensor layout stays, so
                convolutions keep their structure.
    """

    kind = "IF"
    role = NEURON
    arity = (1, None)

    shape: Shape = ()
    threshold: float | np.ndarray = 1.0
    reset: str = "subtract"
    bias: np.ndarray | None = None
    refractory: int = 0
    fixed: NeuronFixed | None = field(default=None)
    keep: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.shape = as_shape(self.shape)
        self.threshold = _threshold_array(self.threshold)
        if self.bias is not None:
            self.bias = np.asarray(self.bias, dtype=np.float32)
        if self.keep is not None:
            self.keep = np.asarray(self.keep, dtype=bool)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def present(self) -> int:
        """Neurons that exist (not pruned)."""
        return self.size if self.keep is None else int(np.count_nonzero(self.keep))

    def infer_shape(self, name: str, inputs: list[Shape]) -> Shape:
        for s in inputs:
            if tuple(s) != self.shape:
                raise ShapeError(f"{self.kind} population of shape {self.shape} fed with shape {tuple(s)}", node=name)
        return self.shape

    def check(self, name: str) -> None:
        super().check(name)
        if self.reset not in RESETS:
            raise InvalidGraph(f"unknown reset {self.reset!r} (use one of {RESETS})", node=name)
        th = np.asarray(self.threshold)
        if not np.all(np.isfinite(th)) or np.any(th <= 0):
            raise InvalidGraph("threshold must be finite and > 0", node=name)
        try:
            np.broadcast_to(th, self.shape)
        except ValueError:
            raise InvalidGraph(f"threshold of shape {th.shape} does not broadcast to {self.shape}", node=name) from None
        if self.bias is not None and self.bias.shape != self.shape:
            raise InvalidGraph(f"bias shape {self.bias.shape} differs from population shape {self.shape}", node=name)
        if int(self.refractory) < 0:
            raise InvalidGraph("refractory period must be >= 0 steps", node=name)
        if self.keep is not None and self.keep.shape != self.shape:
            raise InvalidGraph(f"keep mask shape {self.keep.shape} differs from population shape {self.shape}", node=name)


@dataclass(eq=False)
class LIF(IF):
    """Current-based leaky integrate-and-fire population (Loihi's CUBA neuron).

        u[t] = (1 - du) u[t-1] + I[t]             synaptic current, decay du per step
        v[t] = (1 - dv) v[t-1] + u[t] + b         membrane voltage, decay dv per step
        s[t] = v[t] > theta;  reset of v as for IF (u is not reset)

    decay_current (du) and decay_voltage (dv) are dimensionless fractions in [0, 1] per step;
    with time step dt the time constants are tau_syn = dt/du and tau_mem = dt/dv.
    IF is the special case du = 1, dv = 0.
    """

    kind = "LIF"

    decay_current: float = 1.0
    decay_voltage: float = 0.0

    def check(self, name: str) -> None:
        super().check(name)
        for f in ("decay_current", "decay_voltage"):
            value = float(getattr(self, f))
            if not (0.0 <= value <= 1.0):
                raise InvalidGraph(f"{f} must lie in [0, 1], got {value}", node=name)


def _register_builtins() -> None:
    from .models import NeuronModel, register

    register(NeuronModel(
        "IF", IF, state=("v",), reset="v -= theta (subtract) or v = 0 (zero); refractory: held for R steps",
        lava="LIF (du = 4095, dv = 0; reset by subtraction through a recurrent Dense)", nir="IF",
        builtin=True, description="integrate-and-fire",
    ))
    register(NeuronModel(
        "LIF", LIF, state=("u", "v"), reset="v -= theta or v = 0; u is not reset",
        lava="LIF", nir="CubaLIF", builtin=True, description="current-based leaky integrate-and-fire (Loihi CUBA)",
    ))
    from . import atrlif, cuba

    register(cuba.model())
    register(atrlif.model())

