"""One spike-coded projection as an ordinary snc spiking graph, so that the event simulator and
the Lava backend run it as they run any network.

Binary coding is a spike input as it is. Ternary coding (events -1/0/+1) becomes two binary
channels per input, the positive and the negative events, feeding weights W and -W: the
synapses of one Dense. A perfect-integrator readout sums the events' synaptic input over the T
steps, so its membrane after the run is sum_t W s_t and the projection's value is

    y = V_th * T * output       (the readout reports v[T] / T; T the steps run)

with V_th the token's threshold (the host multiplies, as SpikingBrain's y = V_th sum_t W s_t).
Bitwise codings weight their steps by 2**(T-1-t), which a static synapse cannot do; graded
spikes carry the count as a payload, which snc's spike inputs do not; both are refused here
with that reason.
"""
from __future__ import annotations

import numpy as np

from snc.errors import UnsupportedOperator
from snc.ir import Dense, Graph, Input, NeuronFixed, Readout, SynapseFixed
from snc.ir import spike_coding as sc

LOWERED = ("binary", "ternary")


def projection_graph(weight: np.ndarray, coding: str, *, weight_int: np.ndarray | None = None,
                     weight_exp: int = 0, name: str = "proj") -> Graph:
    """The graph of a coded projection with weight (n_out, n_in). ``weight_int`` (same shape,
    |w| <= 255) makes it fixed point: weight = weight_int * 2**weight_exp in the float fields."""
    if coding not in LOWERED:
        raise UnsupportedOperator(f"{coding} coding weights its steps (or carries payloads); a static spiking "
                                  f"projection takes {' or '.join(LOWERED)} spikes", node=name)
    weight = np.asarray(weight, np.float32)
    n_out, n_in = weight.shape
    channels = n_in if coding == "binary" else 2 * n_in
    w = weight if coding == "binary" else np.concatenate([weight, -weight], axis=1)
    g = Graph(f"coded-{name}")
    g.add("x", Input(shape=(channels,), encoding="spikes"))
    fixed = None
    if weight_int is not None:
        wi = np.asarray(weight_int, np.int32)
        wi = wi if coding == "binary" else np.concatenate([wi, -wi], axis=1)
        fixed = SynapseFixed(weight=wi, weight_exp=int(weight_exp), weight_bits=9 if np.abs(wi).max(initial=0) > 127 else 8)
    g.add(name, Dense(weight=w, fixed=fixed), ["x"])
    out_fixed = None
    if fixed is not None:
        # one unit of synaptic input is worth 1.0: the float weights are weight_int * 2**weight_exp
        out_fixed = NeuronFixed(vth=2**17, bias_mant=np.zeros(n_out, np.int32), bias_exp=0, du=4095, dv=0, scale=1.0)
    g.add("out", Readout(shape=(n_out,), fixed=out_fixed), [name])
    g.outputs = ["out"]
    g.meta["timesteps"] = 1
    return g


def spike_input(trains: np.ndarray, coding: str, pad: int = 0) -> np.ndarray:
    """Trains (T, N, n_in) of the coding -> spike samples (N, T + pad, channels) bool for the
    graph. ``pad`` silent steps at the end let the last events arrive where synapses delay them
    one step (snc's ``delay`` timing and Lava): run T + pad steps then."""
    trains = np.asarray(trains)
    if pad:
        trains = np.concatenate([trains, np.zeros((pad,) + trains.shape[1:], trains.dtype)])
    if coding == "binary":
        spikes = trains > 0
    elif coding == "ternary":
        spikes = np.concatenate([trains > 0, trains < 0], axis=-1)
    else:
        raise UnsupportedOperator(f"{coding} trains have no binary spike form")
    return np.ascontiguousarray(np.moveaxis(spikes, 0, 1))


def value(output: np.ndarray, vth: np.ndarray, timesteps: int) -> np.ndarray:
    """y = V_th * T * output: the projection's value from the readout's output (v[T] / T)."""
    return np.asarray(vth, np.float64).reshape(-1, 1) * timesteps * np.asarray(output, np.float64)


def code(x: np.ndarray, k: float, coding: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Tokens x (N, n_in) -> (trains (T, N, n_in), V_th (N, 1), T) by snc.ir.spike_coding."""
    vth = sc.adaptive_threshold(x, k)
    c, _ = sc.counts(x, vth)
    t = max(1, sc.steps(c, coding))
    return sc.expand(c, coding, t), vth, t
