"""Fixed-point parameters that the ``quantize`` pass attaches to nodes.

They describe the bit-accurate (Loihi / Lava ``fixed_pt``) model of a node next to its
floating-point model; both are first-class. All values are integers in the units of the chip:

* synaptic weights are signed mantissas ``w`` with a per-projection exponent ``e``: each step the
  input a population receives from one projection is ``floor((sum_j w_ij s_j) * 2**e)``;
* the neuron state uses Loihi's scales: ``u += a << 6``; ``v > vth << 6`` fires; the bias is
  ``bias_mant << bias_exp`` (or ``>> -bias_exp``); decays are 12-bit (``4096`` = unity).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

V_MAX = 2**23 - 1  # voltage saturation (23 bits + sign)
U_WRAP = 2**24  # the current register wraps modulo 2**24 ...
U_MAX = 2**23  # ... to (-2**23, 2**23]


def wrap_u(x: np.ndarray) -> np.ndarray:
    """Loihi's (Lava's) 24-bit current wrap: x > 2**23 -> x - 2**24; x <= -2**23 -> x + 2**24."""
    x = np.where(x > U_MAX, x - U_WRAP, x)
    return np.where(x <= -U_MAX, x + U_WRAP, x)


def saturate_v(x: np.ndarray) -> np.ndarray:
    """Loihi's voltage register: clipped to +-(2**23 - 1)."""
    return np.clip(x, -V_MAX, V_MAX)


@dataclass(eq=False)
class SynapseFixed:
    """Integer weights of a Dense / Conv2d / SumPool2d operator.

    weight:      signed integer mantissas, same shape as the float weight (int32 storage).
    weight_exp:  shift applied to the summed input of this projection (``>>`` when negative,
                 arithmetic, i.e. floor).
    weight_bits: declared mantissa precision including sign (2..9); ``|weight|`` fits it.
    """

    weight: np.ndarray
    weight_exp: int = 0
    weight_bits: int = 8


@dataclass(eq=False)
class NeuronFixed:
    """Integer state parameters of an IF / LIF population or a Readout (Loihi CUBA neuron).

    vth:       threshold mantissa (a spike when ``v > vth << 6``); per population.
    bias_mant: per-neuron bias mantissa (13-bit on Loihi), array of the population shape.
    bias_exp:  bias exponent (3-bit on Loihi), shared by the population.
    du, dv:    12-bit current and voltage decays: ``u *= (4095 - du)/4096`` (rounded toward 0),
               ``v *= (4096 - dv)/4096``. IF neurons use du = 4095, dv = 0.
    scale:     float value (in the float model's units) of one weight step, i.e. one unit of the
               synaptic input ``a``; one unit of ``v`` is scale / 64. Lets reports and direct
               (analog) inputs convert between the two models. An array of the population shape
               under per-channel scaling.
    """

    vth: int
    bias_mant: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    bias_exp: int = 0
    du: int = 4095
    dv: int = 0
    scale: float = 1.0
