"""A stand-alone snc plug-in, as a separate package would ship it (tests/test_plugins.py installs
it into a temporary site directory with a .dist-info, so Python's entry points find it). It uses
only snc's public API: a frontend for ``.npzmlp`` files, a backend with an exporter and a
simulator, and a chip profile."""
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

import snc
import snc.ir as ir
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
