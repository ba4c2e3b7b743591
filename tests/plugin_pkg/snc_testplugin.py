"""A stand-alone snc plug-in, as a separate package would ship it (tests/test_plugins.py installs
it into a temporary site directory with a .dist-info, so Python's entry points find it). It uses
only snc's public API: a frontend for ``.npzmlp`` files, a backend with an exporter and a
simulator, a chip profile, and a neuron model (an IF population with an adaptive threshold)."""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from dataclasses import dataclass

import snc
import snc.ir as ir
from snc.ir.models import NeuronModel
from snc.registry import Backend, Frontend


def load_npzmlp(path: Path) -> ir.Graph:
    """w1, b1, w2, b2 arrays of a one-hidden-layer ReLU MLP (read without pickle)."""
    with np.load(path, allow_pickle=False) as z:
        w1, b1, w2, b2 = (z[k].astype(np.float32) for k in ("w1", "b1", "w2", "b2"))
    g = ir.Graph(Path(path).stem)
    g.add("x", ir.Input(shape=(w1.shape[1],)))
    g.add("fc1", ir.Dense(weight=w1, bias=b1), ["x"])
    g.add("relu1", ir.ReLU(), ["fc1"])
    g.add("fc2", ir.Dense(weight=w2, bias=b2), ["relu1"])
    g.outputs = ["fc2"]
    return g


def export_json(graph: ir.Graph, folder, timesteps=None) -> Path:
    """A summary of the populations (names are data, never code), written atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"timesteps": timesteps, "populations": [
        {"name": name, "kind": node.kind, "neurons": int(np.prod(node.shape))}
        for name, node in graph.nodes.items() if node.role in ("neuron", "readout")]}
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh)
    os.replace(tmp, folder / "network.json")
    return folder


def simulate_chip(graph, data, *, labels=None, timesteps=None, arithmetic="fixed", timing="delay", seed=0):
    """The 'chip': snc's simulator with the chip's one-step synaptic delay."""
    return snc.simulate(graph, data, labels=labels, timesteps=timesteps, arithmetic=arithmetic, timing="delay", seed=seed)


def profile() -> dict:
    """Loihi's quantities with small cores (64 neurons): a chip of its own."""
    from snc.hw import PROFILE_DIR

    with open(PROFILE_DIR / "loihi.toml", "rb") as fh:
        doc = tomllib.load(fh)
    doc["name"] = "testchip"
    doc["title"] = "a test chip (Loihi with 64-neuron cores)"
    doc["quantities"]["neurons_per_core"]["value"] = 64
    return doc


FRONTEND = Frontend("npzmlp", (".npzmlp",), load_npzmlp, "one-hidden-layer MLPs as NPZ")
BACKEND = Backend("jsondump", "JSON summary + snc's simulator with delay timing", export=export_json, simulate=simulate_chip)
BROKEN = 42  # not a Backend: loading it must fail with one line


# --- a neuron model -------------------------------------------------------------------------
@dataclass(eq=False)
class AdaptiveIF(ir.IF):
    """IF neurons whose threshold rises by ``adapt`` with each spike and relaxes back by the
    fraction ``adapt_decay`` per step (an ALIF without leak):

        v[t] = v[t-1] + I[t] + b;   s[t] = v[t] > theta + a[t-1]
        reset v as IF (subtract theta, or to 0);   a[t] = (1 - adapt_decay) a[t-1] + adapt s[t]

    Fixed point (v units, 64 per unit of synaptic input): a_q decays as trunc0(a_q (4096 - r) /
    4096) with r = round(4096 adapt_decay), and grows by ``adapt_fixed`` per spike."""

    kind = "AdaptiveIF"
    adapt: float = 0.2
    adapt_decay: float = 0.1
    adapt_fixed: np.ndarray | None = None  # per neuron, v units (set by quantize)
    decay_fixed: int = 0


def _float_state(node, batch):
    n = int(np.prod(node.shape))
    return {"v": np.zeros((batch, n), np.float32), "a": np.zeros((batch, n), np.float32)}


def _float_step(node, state, current):
    v, a = state["v"], state["a"]
    th = np.broadcast_to(np.asarray(node.threshold, np.float32), node.shape).reshape(-1)
    v += current if node.bias is None else current + node.bias.reshape(-1)
    s = v > th + a
    if node.reset == "subtract":
        v -= s * th
    else:
        v[s] = 0.0
    a *= np.float32(1.0 - node.adapt_decay)
    a += np.float32(node.adapt) * s
    return s


def _quantize(node, name, *, step, vth):
    adapt_fixed = np.rint(node.adapt / np.asarray(step, np.float64) * 64.0).astype(np.int64)
    return node.replace(adapt_fixed=adapt_fixed, decay_fixed=int(round(4096 * node.adapt_decay)))


def _fixed_state(node, batch):
    n = int(np.prod(node.shape))
    return {"v": np.zeros((batch, n), np.int64), "a": np.zeros((batch, n), np.int64)}


def _fixed_step(node, state, a_in, bias):
    v, a = state["v"], state["a"]
    vth6 = np.broadcast_to(np.asarray(node.fixed.vth, np.int64), node.shape).reshape(-1) << 6
    v += (a_in << 6) + bias
    s = v > vth6 + a
    if node.reset == "subtract":
        v -= s * vth6
    else:
        v[s] = 0
    prod = a * (4096 - node.decay_fixed)
    a[...] = np.sign(prod) * (np.abs(prod) >> 12) + s * node.adapt_fixed.reshape(-1)
    return s


NEURON = NeuronModel(
    "AdaptiveIF", AdaptiveIF, state=("v", "a"), reset="v as IF; the threshold offset a is not reset",
    float_state=_float_state, float_step=_float_step, quantize=_quantize,
    fixed_state=_fixed_state, fixed_step=_fixed_step,
    lava=None, nir=None, update_cost=2.0, description="IF with a spike-triggered, decaying threshold offset",
)
