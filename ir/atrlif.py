"""ATRLIF: the adaptive-threshold LIF with a refractory state, as Lava 0.10's ``ATRLIF`` process
(and Loihi 2) define it. A declared model (ir/models.py) that snc simulates in float and fixed
point and emits to Lava's ATRLIF; it matches Lava spike for spike in fixed point.

Each spike raises the threshold theta by ``threshold_step``, and theta decays back to its resting
value theta_0 (``threshold``); the membrane is never reset: instead a refractory state r jumps by
2 theta at a spike and decays, and a neuron fires while v - r reaches theta. One step, with
synaptic input I[t] (float; the order of Lava's float model)::

    i = (1 - decay_current) i + I
    v = (1 - decay_voltage) v + i + b
    theta = (1 - decay_threshold) (theta - theta_0) + theta_0
    r = (1 - decay_refractory) r
    s = v - r >= theta                       (not strict, unlike LIF)
    on a spike: r += 2 theta;  theta += threshold_step

Fixed point (Lava's ``PyATRLIFModelFixed``; i, v, theta, r in units of 1/64 of one synaptic input
step, as NeuronFixed): theta_0 = vth << 6 with the threshold mantissa quantize chose and
theta_step = step_fixed << 6; decays use the float fractions d as Lava does, toward zero:
i: trunc(i (4096 - (4096 d + 1))) >> 12 (the product in float, then truncated); v, theta - theta_0
and r: x * trunc(4096 - 4096 d) >> 12 (the factor truncated first); shifts are of the magnitude,
the sign kept. i wraps at 24 bits, v saturates at +-(2**23 - 1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snc.errors import InvalidGraph

from .fixed_point import saturate_v, wrap_u
from .neurons import IF

UNITY = 4096


@dataclass(eq=False)
class ATRLIF(IF):
    """Adaptive-threshold LIF with a refractory state (module docstring). ``threshold`` is the
    resting threshold theta_0; ``reset`` and ``refractory`` do not apply (the refractory state
    does their work) and must stay at their defaults."""

    kind = "ATRLIF"

    reset: str = "zero"
    decay_current: float = 0.0
    decay_voltage: float = 0.0
    decay_threshold: float = 0.0
    decay_refractory: float = 0.0
    threshold_step: float = 0.0
    step_fixed: int = 0  # threshold_step in units of one synaptic input step (set by quantize)

    def check(self, name: str) -> None:
        super().check(name)
        if self.reset != "zero" or int(self.refractory):
            raise InvalidGraph("an ATRLIF population has no reset mode or refractory count (its refractory state r does their work)", node=name)
        for field_name in ("decay_current", "decay_voltage", "decay_threshold", "decay_refractory"):
            if not 0.0 <= float(getattr(self, field_name)) <= 1.0:
                raise InvalidGraph(f"{field_name} must lie in [0, 1]", node=name)
        if float(self.threshold_step) < 0.0:
            raise InvalidGraph("threshold_step must be >= 0", node=name)
        if np.size(self.threshold) > 1:
            raise InvalidGraph("an ATRLIF population has one resting threshold", node=name)


def _theta0(node) -> float:
    return float(np.asarray(node.threshold).reshape(-1)[0])


def float_state(node, batch: int) -> dict:
    n = int(np.prod(node.shape))
    z = np.zeros((batch, n), np.float32)
    return {"i": z.copy(), "v": z.copy(), "r": z.copy(), "theta": np.full((batch, n), _theta0(node), np.float32)}


def float_step(node, state: dict, current: np.ndarray) -> np.ndarray:
    f32 = np.float32
    i, v, r, theta = state["i"], state["v"], state["r"], state["theta"]
    theta0 = f32(_theta0(node))
    i *= f32(1.0 - node.decay_current)
    i += current
    v *= f32(1.0 - node.decay_voltage)
    v += i if node.bias is None else i + node.bias.reshape(-1)
    theta[...] = (theta - theta0) * f32(1.0 - node.decay_threshold) + theta0
    r *= f32(1.0 - node.decay_refractory)
    s = (v - r) >= theta
    r += f32(2.0) * theta * s
    theta += f32(node.threshold_step) * s
    return s


def quantize(node, name: str, *, step, vth) -> ATRLIF:
    step = float(np.asarray(step, np.float64).reshape(-1)[0])
    return node.replace(step_fixed=int(round(float(node.threshold_step) / step)))


def fixed_state(node, batch: int) -> dict:
    n = int(np.prod(node.shape))
    z = np.zeros((batch, n), np.int64)
    theta0 = int(np.asarray(node.fixed.vth).reshape(-1)[0]) << 6
    return {"i": z.copy(), "v": z.copy(), "r": z.copy(), "theta": np.full((batch, n), theta0, np.int64)}


def _shift(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * (np.abs(x) >> 12)


def _factor(d: float) -> np.int64:
    return np.int64(UNITY - float(d) * UNITY)  # truncated toward zero, as np.int64 of a float


def fixed_step(node, state: dict, a_in: np.ndarray, bias: np.ndarray) -> np.ndarray:
    i, v, r, theta = state["i"], state["v"], state["r"], state["theta"]
    theta0 = np.int64(int(np.asarray(node.fixed.vth).reshape(-1)[0]) << 6)
    keep_i = UNITY - (float(node.decay_current) * UNITY + 1)  # Lava's ds_offset: the current's factor is float
    i[...] = wrap_u(_shift((i * keep_i).astype(np.int64)) + (a_in << 6))
    v[...] = saturate_v(_shift(v * _factor(node.decay_voltage)) + i + bias)
    theta[...] = _shift((theta - theta0) * _factor(node.decay_threshold)) + theta0
    r[...] = _shift(r * _factor(node.decay_refractory))
    s = (v - r) >= theta
    r += 2 * theta * s
    theta += np.int64(int(node.step_fixed) << 6) * s
    return s


def lava_params(node, name: str, fixed: bool) -> dict:
    """Lava's ATRLIF process, with the same decays (fractions, in fixed point too) and the
    threshold and its step in integer units of the synaptic input (Lava shifts them by 6)."""
    params = {"process": "ATRLIF", "delta_i": float(node.decay_current), "delta_v": float(node.decay_voltage),
              "delta_theta": float(node.decay_threshold), "delta_r": float(node.decay_refractory)}
    if fixed:
        params.update(theta_0=int(np.asarray(node.fixed.vth).reshape(-1)[0]), theta_step=int(node.step_fixed))
    else:
        params.update(theta_0=_theta0(node), theta_step=float(node.threshold_step))
    return params


def model():
    from .models import NeuronModel

    return NeuronModel(
        "ATRLIF", ATRLIF, state=("i", "v", "theta", "r"),
        reset="no reset of v: a spike adds 2 theta to the refractory state r and threshold_step to theta; "
              "both decay back (theta to its resting value)",
        float_state=float_state, float_step=float_step, quantize=quantize, fixed_state=fixed_state, fixed_step=fixed_step,
        lava="ATRLIF", lava_params=lava_params, nir=None, update_cost=2.0,
        description="adaptive-threshold LIF with a refractory state (Lava's ATRLIF, Loihi 2)",
    )
