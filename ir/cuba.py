"""CuBa-LIF with the options trained SNNs use: reset to a value, refractoriness, an adaptive
threshold, and snnTorch's reset timing. A declared model (ir/models.py): the simulator runs the
steps below in float and fixed point; snc's Lava emitter writes it as Lava's LIF when it is one
(reset to zero at once, no refractory period, no adaptation) and refuses it otherwise: Lava 0.10's
LIF has no reset value or adaptive threshold, and its ATRLIF resets through a refractory state
of its own (a different model).

Float, one step with synaptic input I[t] (all float32, in this order)::

    u = (1 - du) u + I                                  synaptic current
    if not refractory:  v = (1 - dv) v + u (+ b)        membrane (held while refractory)
    next_step timing:   reset v by the previous step's spikes (below)
    s = v > theta + a  and not refractory               a: the threshold's adaptive offset
    immediate timing:   reset v by s: v - theta ('subtract'), 0 ('zero'), v_reset ('value')
    refractory: R steps after a spike;   a = (1 - adapt_decay) a + adapt s

With ``reset_timing="next_step"`` the reset of a spike at t is applied at t + 1 after the decay
and the input, as snnTorch's Leaky/Synaptic/RLeaky do (``mem = beta mem + syn - s[t-1] theta``);
snc's IF/LIF (and Loihi) reset immediately.

Fixed point (v in units of 1/64 of one synaptic input step, as NeuronFixed): u and v decay as
trunc0(x (4096 - d) / 4096) with d = round(4096 du) (and dv, adapt_decay), a enters as a << 6,
the threshold is vth << 6 plus the integer offset, adapt and v_reset are rounded to v units; u
wraps at 24 bits and v saturates at +-(2**23 - 1), as Loihi's registers (and Lava's LIF) do.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snc.errors import InvalidGraph

from .fixed_point import saturate_v, wrap_u
from .neurons import LIF

RESET_TIMINGS = ("immediate", "next_step")


@dataclass(eq=False)
class CubaLIF(LIF):
    """Current-based LIF (see the module docstring for the equations).

    v_reset:        the value v takes after a spike when reset == 'value'.
    adapt:          threshold increase per spike (the units of v and theta); adapt_decay its decay per step.
    reset_timing:   'immediate' (snc, Loihi) or 'next_step' (snnTorch).
    *_fixed:        integer forms, set by quantize.
    """

    kind = "CubaLIF"

    v_reset: float = 0.0
    adapt: float = 0.0
    adapt_decay: float = 0.0
    reset_timing: str = "immediate"
    du_fixed: int = 4096
    dv_fixed: int = 0
    adapt_decay_fixed: int = 0
    adapt_fixed: np.ndarray | None = None
    v_reset_fixed: np.ndarray | None = None

    def check(self, name: str) -> None:
        reset = self.reset
        if reset == "value":  # IF.check knows subtract and zero
            self.reset = "zero"
        try:
            super().check(name)
        finally:
            self.reset = reset
        if self.reset_timing not in RESET_TIMINGS:
            raise InvalidGraph(f"unknown reset_timing {self.reset_timing!r} (use one of {RESET_TIMINGS})", node=name)
        if self.reset_timing == "next_step" and int(self.refractory):
            raise InvalidGraph("a refractory period with next-step reset timing is not defined", node=name)
        if not (0.0 <= float(self.adapt_decay) <= 1.0) or float(self.adapt) < 0.0:
            raise InvalidGraph("adapt must be >= 0 and adapt_decay in [0, 1]", node=name)


def _flat(node, value, dtype) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(np.asarray(value, dtype), node.shape).reshape(-1))


def float_state(node, batch: int) -> dict:
    n = int(np.prod(node.shape))
    z = np.zeros((batch, n), np.float32)
    return {"u": z.copy(), "v": z.copy(), "a": z.copy(), "ref": np.zeros((batch, n), np.int32), "s": np.zeros((batch, n), bool)}


def _reset(node, v, s, theta, v_reset):
    if node.reset == "subtract":
        v -= s * theta
    elif node.reset == "zero":
        v[s] = 0
    else:
        np.copyto(v, np.broadcast_to(v_reset, v.shape), where=s)


def _fire(node, state: dict, v, theta, v_reset, offset, free):
    """The step's spikes (v above the threshold plus its adaptive offset, outside refractory
    periods), with the reset at the model's timing and the refractory count: the same in float
    and in fixed point."""
    if node.reset_timing == "next_step":
        _reset(node, v, state["s"], theta, v_reset)
    s = (v > theta + offset) & free
    if node.reset_timing == "immediate":
        _reset(node, v, s, theta, v_reset)
    if int(node.refractory):
        ref = state["ref"]
        ref -= (~free).astype(np.int32)
        ref[s] = int(node.refractory)
    state["s"] = s
    return s


def float_step(node, state: dict, current: np.ndarray) -> np.ndarray:
    f32 = np.float32
    u, v, a, ref = state["u"], state["v"], state["a"], state["ref"]
    theta = _flat(node, node.threshold, np.float32)
    u *= f32(1.0 - node.decay_current)
    u += current
    drive = u if node.bias is None else u + node.bias.reshape(-1)
    free = ref == 0
    new_v = v * f32(1.0 - node.decay_voltage) + drive
    np.copyto(v, new_v, where=free)
    s = _fire(node, state, v, theta, f32(node.v_reset), a, free)
    a *= f32(1.0 - node.adapt_decay)
    a += f32(node.adapt) * s
    return s


def quantize(node, name: str, *, step, vth) -> CubaLIF:
    step = np.asarray(step, np.float64)
    return node.replace(
        du_fixed=int(round(4096 * float(node.decay_current))),
        dv_fixed=int(round(4096 * float(node.decay_voltage))),
        adapt_decay_fixed=int(round(4096 * float(node.adapt_decay))),
        adapt_fixed=np.rint(float(node.adapt) / step * 64.0).astype(np.int64),
        v_reset_fixed=np.rint(float(node.v_reset) / step * 64.0).astype(np.int64),
    )


def fixed_state(node, batch: int) -> dict:
    n = int(np.prod(node.shape))
    z = np.zeros((batch, n), np.int64)
    return {"u": z.copy(), "v": z.copy(), "a": z.copy(), "ref": np.zeros((batch, n), np.int32), "s": np.zeros((batch, n), bool)}


def _decay(x: np.ndarray, d: int) -> np.ndarray:
    prod = x * (4096 - int(d))
    return np.sign(prod) * (np.abs(prod) >> 12)


def fixed_step(node, state: dict, a_in: np.ndarray, bias: np.ndarray) -> np.ndarray:
    u, v, a, ref = state["u"], state["v"], state["a"], state["ref"]
    vth6 = _flat(node, node.fixed.vth, np.int64) << 6
    v_reset = _flat(node, node.v_reset_fixed if node.v_reset_fixed is not None else 0, np.int64)
    u[...] = wrap_u(_decay(u, node.du_fixed) + (a_in << 6))  # Loihi's 24-bit registers, as Lava's LIF
    free = ref == 0
    np.copyto(v, saturate_v(_decay(v, node.dv_fixed) + u + bias), where=free)
    s = _fire(node, state, v, vth6, v_reset, a, free)
    adapt = _flat(node, node.adapt_fixed if node.adapt_fixed is not None else 0, np.int64)
    a[...] = _decay(a, node.adapt_decay_fixed) + adapt * s
    return s


def lava_params(node, name: str, fixed: bool) -> dict:
    """Lava's LIF is this model with reset to zero at once, no refractory period and a fixed
    threshold (its u decay is (4095 - du)/4096, ours (4096 - du_fixed)/4096). Anything else has
    no Lava process snc emits (Lava's ATRLIF resets through its own refractory state)."""
    from snc.errors import UnsupportedOperator

    lacking = [what for what, present in (
        (f"reset {node.reset!r} (Lava's LIF resets to zero)", node.reset != "zero"),
        ("next-step reset timing", node.reset_timing != "immediate"),
        ("a refractory period", int(node.refractory) != 0),
        ("an adaptive threshold", float(node.adapt) != 0.0)) if present]
    if lacking:
        raise UnsupportedOperator(f"Lava's LIF has no {', no '.join(lacking)}: this CubaLIF population has no Lava form", node=name)
    params = {"process": "LIF", "float_du": float(node.decay_current), "float_dv": float(node.decay_voltage)}
    if fixed:
        params.update(du=int(node.du_fixed) - 1, dv=int(node.dv_fixed))
    return params


def model():
    from .models import NeuronModel

    return NeuronModel(
        "CubaLIF", CubaLIF, state=("u", "v", "a"),
        reset="v - theta, 0 or v_reset on a spike (immediately, or at the next step as snnTorch); u not reset; "
              "a (threshold offset) grows by adapt per spike",
        float_state=float_state, float_step=float_step, quantize=quantize, fixed_state=fixed_state, fixed_step=fixed_step,
        lava="LIF (reset to zero, immediate, no refractory period or adaptation)", lava_params=lava_params,
        nir="CubaLIF", update_cost=1.0,
        description="current-based LIF with reset value, refractoriness, adaptive threshold, snnTorch reset timing",
    )
