"""Write a compiled spiking graph as a self-contained Lava program.

The folder holds ``network.json`` (structure; layer names only as labels), ``params.npz``
(every weight, exponent, threshold, decay and bias, fixed point and float), the fixed
``network.py`` / ``run.py`` templates (the same code for every network: no model string ever
becomes code) and a README. It needs lava-nc and numpy only.

What Lava's standard processes cannot express is refused here, at export time, naming the node:
per-neuron thresholds, refractory periods, leaky neurons with reset by subtraction, composed
weights beyond the 8/9-bit range, thresholds the recurrent synapse cannot carry.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from snc.errors import UnsupportedOperator
from snc.ir import INPUT, NEURON, READOUT, Graph
from snc.ir.neurons import is_builtin, require_model

from ..sim import build_plan

TEMPLATE = Path(__file__).resolve().parent / "template"
FORMAT_VERSION = 1
DENSE_FORMAT_DENSITY = 0.25  # a connection at least this dense becomes a Lava Dense process
RECURRENT_MANT = 255


MAX_DELAY = 62  # Loihi 2: 6-bit synaptic delays (0-63); netx clips to 62
LAVA_PROCESSES = ("LIF", "ATRLIF")  # what the network.py template builds for a population

def _csr_arrays(prefix: str, m: sp.spmatrix, dtype) -> dict[str, np.ndarray]:
    m = sp.csr_matrix(m)
    m.sort_indices()
    return {
        f"{prefix}_data": np.asarray(m.data, dtype=dtype),
        f"{prefix}_indices": np.asarray(m.indices, dtype=np.int64),
        f"{prefix}_indptr": np.asarray(m.indptr, dtype=np.int64),
        f"{prefix}_shape": np.asarray(m.shape, dtype=np.int64),
    }


def fixed_point_ready(graph: Graph) -> bool:
    for node in graph.nodes.values():
        if node.role in (NEURON, READOUT) and getattr(node, "fixed", None) is None:
            return False
        if node.kind in ("Dense", "Conv2d") and node.fixed is None:
            return False
    return True


def recurrent_weight(vth: int, name: str) -> tuple[int, int]:
    """vth = m * 2**k with 1 <= m <= 255: the weight of the threshold-subtracting self-synapse."""
    k = 0
    while vth % 2 == 0 and vth // 2 >= 1 and vth > RECURRENT_MANT:
        vth //= 2
        k += 1
    if vth > RECURRENT_MANT:
        raise UnsupportedOperator(
            f"threshold mantissa {vth << k} is not m * 2**k with m <= 255, so the recurrent synapse that subtracts it "
            "cannot carry it; quantize with snc (it chooses such thresholds)", node=name)
    return vth, k


def _check_population(name: str, node, fixed: bool) -> dict | None:
    """Refuse what Lava's processes cannot run, naming the node. For a declared model, the Lava
    process and parameters it maps to (its ``lava_params``, which refuses settings the process
    lacks); None for the built-in IF / LIF and readouts."""
    model = require_model(node, name, "the Lava backend", "lava")
    lava = None
    if model is not None and not is_builtin(node):
        lava = dict(model.lava_params(node, name, fixed))
        if lava.get("process") not in LAVA_PROCESSES:
            raise UnsupportedOperator(f"the Lava backend emits {', '.join(LAVA_PROCESSES)} processes, not "
                                      f"{lava.get('process')!r} ({node.kind})", node=name)
    if int(getattr(node, "refractory", 0)):
        raise UnsupportedOperator("Lava's LIF has no refractory period", node=name)
    if node.kind == "LIF" and node.reset == "subtract" and (node.decay_current != 1.0 or node.decay_voltage != 0.0):
        raise UnsupportedOperator("a leaky neuron with reset by subtraction has no Lava LIF form", node=name)
    if node.role == NEURON and np.size(node.threshold) > 1 and not np.all(np.asarray(node.threshold) == np.asarray(node.threshold).reshape(-1)[0]):
        raise UnsupportedOperator("per-neuron thresholds (per-channel scaling): a Lava LIF has one threshold", node=name)
    fx = getattr(node, "fixed", None)
    if fx is not None and np.size(fx.vth) > 1 and not np.all(np.asarray(fx.vth) == np.asarray(fx.vth).reshape(-1)[0]):
        raise UnsupportedOperator("per-neuron thresholds (per-channel scaling): a Lava LIF has one threshold", node=name)
    return lava


def build_export(graph: Graph, timesteps: int | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The network.json document and the params.npz arrays."""
    graph.validate()
    if not graph.is_spiking:
        raise UnsupportedOperator("only compiled (spiking) graphs can be exported to Lava")
    if len(graph.input_names) != 1:
        raise UnsupportedOperator(f"Lava export supports one input, the graph has {graph.input_names}")
    for name, node in graph.nodes.items():
        if node.kind == "Delay" and int(node.steps) > MAX_DELAY:
            raise UnsupportedOperator(f"a delay of {int(node.steps)} steps exceeds the {MAX_DELAY} a Lava DelayDense "
                                      "synapse holds (6 bits, plus the step every synapse adds)", node=name)
    fixed = fixed_point_ready(graph)
    plan = build_plan(graph)
    plan_fixed = build_plan(graph, fixed=True) if fixed else None
    (input_name,) = graph.input_names
    inp = graph.nodes[input_name]
    pops = [p for p in plan.populations if p.node.role in (NEURON, READOUT)]
    index = {p.name: i for i, p in enumerate(pops)}
    params: dict[str, np.ndarray] = {}
    spec: dict[str, Any] = {
        "format": "snc-lava",
        "version": FORMAT_VERSION,
        "fixed_point": fixed,
        "timesteps": int(timesteps or graph.meta.get("timesteps", 64)),
        "input": {"name": input_name, "encoding": "analog" if inp.encoding == "direct" else "spikes",
                  "shape": list(inp.shape), "size": int(np.prod(inp.shape))},
        "populations": [],
        "connections": [],
        "analog": [],
        "readout": None,
    }
    for p in pops:
        node, i = p.node, index[p.name]
        declared = _check_population(p.name, node, fixed)
        keep = getattr(node, "keep", None)
        alive = np.ones(p.size, bool) if keep is None else keep.reshape(-1)
        spec["populations"].append({
            "index": i, "name": p.name, "size": p.size, "shape": list(p.shape),
            "role": "readout" if node.role == READOUT else "neuron",
            "reset": getattr(node, "reset", "zero") if node.role == NEURON else "zero",
            "process": "LIF" if declared is None else declared["process"],
        })
        # Float parameters (Lava floating_pt: fractions, no scaling).
        if node.role == NEURON:
            params[f"pop{i}_float_vth"] = np.float64(np.asarray(node.threshold).reshape(-1)[0])
            params[f"pop{i}_float_du"] = np.float64(getattr(node, "decay_current", 1.0))  # IF: 1, 0
            params[f"pop{i}_float_dv"] = np.float64(getattr(node, "decay_voltage", 0.0))
        else:
            params[f"pop{i}_float_vth"] = np.float64(1e30)  # an integrator never fires
            params[f"pop{i}_float_du"] = np.float64(node.decay_current)  # 1, 0 unless leaky (LI)
            params[f"pop{i}_float_dv"] = np.float64(node.decay_voltage)
        bias = np.zeros(p.size) if node.bias is None else node.bias.reshape(-1).astype(np.float64)
        params[f"pop{i}_float_bias"] = np.where(alive, bias, 0.0)  # removed neurons get nothing
        if fixed:
            fx = node.fixed
            vth = int(np.asarray(fx.vth).reshape(-1)[0])
            params[f"pop{i}_vth"] = np.int64(vth)
            params[f"pop{i}_du"] = np.int64(fx.du)
            params[f"pop{i}_dv"] = np.int64(fx.dv)
            mant = np.broadcast_to(np.asarray(fx.bias_mant, dtype=np.int64), p.shape).reshape(-1) if np.size(fx.bias_mant) else np.zeros(p.size, np.int64)
            params[f"pop{i}_bias_mant"] = np.where(alive, mant, 0)
            params[f"pop{i}_bias_exp"] = np.int64(fx.bias_exp)
            params[f"pop{i}_scale"] = np.asarray(fx.scale, dtype=np.float64)
            if node.role == NEURON and node.reset == "subtract":
                if fx.bias_exp < 6 and np.any(mant):
                    raise UnsupportedOperator("bias of a subtractive-reset population must be a multiple of 64 v units", node=p.name)
                m, k = recurrent_weight(vth, p.name)
                params[f"pop{i}_recurrent_mant"] = np.int64(m)
                params[f"pop{i}_recurrent_exp"] = np.int64(k)
        for key, value in (declared or {}).items():  # a declared model's own parameters override the defaults
            if key != "process":
                params[f"pop{i}_{key}"] = np.asarray(value)
        if node.role == READOUT:
            src_spikes = node.mode == "spike_count"
            spec["readout"] = {"population": i, "mode": node.mode, "leaky": bool(node.leaky),
                               "source": index[p.projections[0].source] if src_spikes else None,
                               "scale": float(node.fixed.scale) if fixed and not src_spikes else None}
    fixed_proj = {}
    if plan_fixed is not None:
        for p in plan_fixed.populations:
            for proj in p.projections:
                fixed_proj[(proj.source, proj.target)] = proj
    k_conn = k_analog = 0
    for p in pops:
        if p.node.role == READOUT and p.node.mode == "spike_count":
            continue
        for proj in p.projections:
            if proj.static:
                item = {"index": k_analog, "target": index[p.name]}
                if proj.host_pool is not None:
                    # The host takes window maxima of the linear map's result (float64, exact).
                    pool = graph.nodes[proj.host_pool]
                    (pre,) = graph.inputs_of(proj.host_pool)
                    item["max_pool"] = {"in_shape": [int(d) for d in plan.shapes[pre]], "kernel": list(pool.kernel),
                                        "stride": list(pool.stride), "padding": list(pool.padding),
                                        "dilation": list(pool.dilation)}
                spec["analog"].append(item)
                params.update(_csr_arrays(f"analog{k_analog}", proj.matrix, np.float64))
                k_analog += 1
                continue
            density = proj.matrix.nnz / max(1, proj.matrix.shape[0] * proj.matrix.shape[1])
            src = -1 if graph.nodes[proj.source].role == INPUT else index[proj.source]
            if proj.delay > MAX_DELAY:
                raise UnsupportedOperator(f"projection from {proj.source!r} is delayed {proj.delay} steps; a Lava "
                                          f"DelayDense synapse holds at most {MAX_DELAY}", node=p.name)
            # Delayed projections (Delay operators on the path) become DelayDense synapses: a delay
            # of d there arrives d steps after Dense's one-step delay, as snc's delay timing has it.
            spec["connections"].append({"index": k_conn, "source": src, "target": index[p.name],
                                        "format": "dense" if density >= DENSE_FORMAT_DENSITY else "sparse",
                                        "delay": int(proj.delay)})
            params.update(_csr_arrays(f"conn{k_conn}_float", proj.matrix, np.float64))
            if fixed:
                fp = fixed_proj[(proj.source, proj.target)]
                bits = max([int(graph.nodes[o].fixed.weight_bits) for o in fp.nodes
                            if getattr(graph.nodes[o], "fixed", None) is not None] or [8])
                lo, hi = (-256, 255) if bits >= 9 else (-128, 127)  # sent as is (9 bits) or doubled
                w_min = float(fp.matrix.min()) if fp.matrix.nnz else 0.0
                w_max = float(fp.matrix.max()) if fp.matrix.nnz else 0.0
                if w_min < lo or w_max > hi:
                    raise UnsupportedOperator(
                        f"composed weights from {proj.source!r} span [{w_min:.0f}, {w_max:.0f}], beyond the [{lo}, {hi}] "
                        f"a Lava synapse of {bits} bits holds", node=p.name)
                params.update(_csr_arrays(f"conn{k_conn}", fp.matrix, np.int64))
                params[f"conn{k_conn}_exp"] = np.int64(fp.weight_exp)
                params[f"conn{k_conn}_bits"] = np.int64(bits)
            k_conn += 1
    return spec, params


def export(graph: Graph, folder: str | os.PathLike, *, timesteps: int | None = None) -> Path:
    """Write the Lava program for ``graph`` to ``folder`` (atomically: built in a temporary
    sibling folder, then renamed into place)."""
    spec, params = build_export(graph, timesteps)
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=str(folder.parent)))
    try:
        (tmp / "network.json").write_text(json.dumps(spec, indent=1))
        np.savez(tmp / "params.npz", **params)
        for name in ("network.py", "run.py"):
            shutil.copyfile(TEMPLATE / name, tmp / name)
        (tmp / "README.md").write_text(_readme(spec))
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old")
            if old.exists():
                shutil.rmtree(old)
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _readme(spec: dict[str, Any]) -> str:
    pops = "\n".join(f"| {p['index']} | {json.dumps(p['name'])} | {p['size']} | {p['role']} | {p['reset']} |" for p in spec["populations"])
    inp = spec["input"]
    shape = "x".join(map(str, inp["shape"]))
    what = ("(N, T, " + shape + ") spikes of 0/1") if inp["encoding"] == "spikes" else ("(N, " + shape + ") analog samples")
    return f"""# A spiking network exported by snc for Lava

This folder is a complete Lava (lava-nc 0.10) program; it needs `lava-nc` and `numpy`, not snc.

    python run.py --steps {spec['timesteps']} --input x.npy --out spikes.npz [--cfg fixed|float]

* `--input`: an `.npy` array of {what}.
* `--cfg fixed` (default{'' if spec['fixed_point'] else '; this export has no fixed-point parameters, use float'}):
  `Loihi2SimCfg(select_tag="fixed_pt")`, Lava's bit-accurate CPU models; `float`:
  `"floating_pt"`; `hw`: `Loihi2HwCfg` (needs Intel's `lava-loihi`; a hook, not tested here).
* `--out`: `.npz` with `spikes_<k>` (N, steps, neurons) per population k below, and `readout_v`,
  the readout's membrane potential after the last step.

Files: `network.json` (structure), `params.npz` (weights, exponents, thresholds, decays,
biases), `network.py` (builds the Lava processes from them), `run.py` (runs the samples).
snc's simulator in fixed-point mode with one-step synaptic delay (`snc simulate --fixed-point
--timing delay`) produces the same spikes, step for step.

| k | population | neurons | role | reset |
|---|---|---|---|---|
{pops}

Reset by subtraction is built from a LIF whose current integrates (du = -1) and whose voltage
reads it (dv = 4096), a constant input for the bias, and a self-synapse of weight -vth that
subtracts the threshold one step after a spike.
"""
