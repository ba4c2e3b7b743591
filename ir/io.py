"""Where a network begins (``Input``) and where its answer is read (``Readout``)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from snc.errors import InvalidGraph, ShapeError

from .fixed_point import NeuronFixed
from .node import INPUT, READOUT, Node, Shape, as_shape

ENCODINGS = ("direct", "rate", "spikes")
READOUT_MODES = ("membrane", "spike_count")


@dataclass(eq=False)
class Input(Node):
    """A network input of ``shape`` (no batch dimension), presented for T time steps.

    encoding:
      * ``direct`` - the analog value x is injected as a current every step: I[t] = x
        (the usual choice for converted ANNs; the first synaptic layer performs MACs);
      * ``rate``   - Bernoulli spikes: s[t] ~ Bernoulli(clip(x, 0, 1)), independently per step;
      * ``spikes`` - the data are already binary events, laid out (T, *shape) per sample.
    """

    kind = "Input"
    role = INPUT
    arity = (0, 0)

    shape: Shape = ()
    encoding: str = "direct"

    def __post_init__(self) -> None:
        self.shape = as_shape(self.shape)

    def infer_shape(self, name: str, inputs: list[Shape]) -> Shape:
        if inputs:
            raise InvalidGraph("an Input has no predecessors", node=name)
        return self.shape

    def check(self, name: str) -> None:
        super().check(name)
        if self.encoding not in ENCODINGS:
            raise InvalidGraph(f"unknown encoding {self.encoding!r} (use one of {ENCODINGS})", node=name)
        if not self.shape or any(d < 1 for d in self.shape):
            raise InvalidGraph(f"input shape {self.shape} must be non-empty and positive", node=name)

    @property
    def spiking(self) -> bool:
        return self.encoding != "direct"

    def conform(self, data: np.ndarray, name: str = "input", timesteps: int | None = None) -> np.ndarray:
        """Check samples against this input and return them as float32 (bool for spikes).

        Analog/rate samples are (N, *shape); shapes that differ only by axes of length 1 are
        accepted ((N, 784) for an input of (784, 1)). Spike samples are (N, T, *shape) of 0/1.
        Raises InvalidData naming the node.
        """
        from snc.errors import InvalidData

        data = np.asarray(data)
        if data.dtype == object or data.dtype.kind not in "biuf":
            raise InvalidData(f"samples must be numeric, got dtype {data.dtype}", node=name)
        want = tuple(self.shape)
        if self.encoding == "spikes":
            if data.ndim != len(want) + 2 or tuple(data.shape[2:]) != want:
                raise InvalidData(f"spike samples must be (N, T, *{want}), got {tuple(data.shape)}", node=name)
            if timesteps is not None and data.shape[1] < timesteps:
                raise InvalidData(f"spike samples hold {data.shape[1]} steps, {timesteps} requested", node=name)
            if data.dtype == bool:
                return data
            if not np.all((data == 0) | (data == 1)):
                raise InvalidData("spike samples must hold only 0 and 1", node=name)
            return data.astype(bool)
        if data.ndim < 1:
            raise InvalidData("samples must have a leading sample axis", node=name)
        got = tuple(data.shape[1:])
        if got != want:
            if [d for d in got if d != 1] == [d for d in want if d != 1]:
                data = data.reshape((len(data),) + want)
            else:
                raise InvalidData(f"samples have shape {got}, the model input expects {want}", node=name)
        data = data.astype(np.float32)
        if not np.all(np.isfinite(data)):
            raise InvalidData("samples contain NaN or inf", node=name)
        if self.encoding == "rate" and data.size and (data.min() < 0 or data.max() > 1):
            raise InvalidData("rate-encoded samples must lie in [0, 1] (they are spike probabilities)", node=name)
        return data


@dataclass(eq=False)
class Readout(Node):
    """The network's answer, one value per class.

    mode ``membrane`` (default for converted ANNs): a non-spiking integrator,
        v[t] = v[t-1] + I[t] + b,  prediction = argmax v[T]  (v[T]/T estimates the ANN logits).
    mode ``spike_count``: counts the spikes of its single input population,
        c = sum_t s[t],  prediction = argmax c  (ties go to the lowest index).

    A membrane readout with ``decay_voltage`` > 0 or ``decay_current`` < 1 is a leaky
    integrator (LI, the usual readout of trained SNNs; NIR's ``LI``), in the order of snc's LIF:
        u[t] = (1 - decay_current) u[t-1] + I[t],   v[t] = (1 - decay_voltage) v[t-1] + u[t] + b,
    and its output is the membrane v[T] itself (``output_scale``); fixed point as LIF (du, dv).

    bias: constant current b per output (same shape), or None.
    """

    kind = "Readout"
    role = READOUT
    arity = (1, None)

    shape: Shape = ()
    mode: str = "membrane"
    bias: np.ndarray | None = None
    decay_current: float = 1.0
    decay_voltage: float = 0.0
    fixed: NeuronFixed | None = field(default=None)

    def __post_init__(self) -> None:
        self.shape = as_shape(self.shape)
        if self.bias is not None:
            self.bias = np.asarray(self.bias, dtype=np.float32)

    @property
    def leaky(self) -> bool:
        """A leaky integrator (LI) rather than a perfect one."""
        return self.mode == "membrane" and (float(self.decay_current) != 1.0 or float(self.decay_voltage) != 0.0)

    def output_scale(self, timesteps: int) -> float:
        """What the final membrane is multiplied by to give the output: 1/T for the perfect
        integrator (v[T]/T estimates the ANN logits), 1 for a leaky one and for spike counts."""
        return 1.0 / timesteps if self.mode == "membrane" and not self.leaky else 1.0

    def infer_shape(self, name: str, inputs: list[Shape]) -> Shape:
        for s in inputs:
            if tuple(s) != self.shape:
                raise ShapeError(f"readout of shape {self.shape} fed with shape {tuple(s)}", node=name)
        return self.shape

    def check(self, name: str) -> None:
        super().check(name)
        if self.mode not in READOUT_MODES:
            raise InvalidGraph(f"unknown readout mode {self.mode!r} (use one of {READOUT_MODES})", node=name)
        if self.bias is not None and self.bias.shape != self.shape:
            raise InvalidGraph(f"bias shape {self.bias.shape} differs from readout shape {self.shape}", node=name)
        if not (0.0 <= float(self.decay_current) <= 1.0 and 0.0 <= float(self.decay_voltage) <= 1.0):
            raise InvalidGraph("readout decays must lie in [0, 1]", node=name)
        if self.mode == "spike_count" and (float(self.decay_current) != 1.0 or float(self.decay_voltage) != 0.0):
            raise InvalidGraph("a spike-count readout has no decay", node=name)
