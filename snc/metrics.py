"""Metrics compatible with NeuroBench (Yik et al., Nat. Commun. 2025; harness NeuroBench/neurobench
@ e521c28), computed from a spiking graph and a simulation result.

Counting rules (../shared/reference/ENERGY_AND_METRICS.md section 3):

* SynapticOperations, per sample summed over time steps, at every connection layer (Dense,
  Conv2d) on the values that layer receives: effective ops skip zero weights and zero inputs;
  they are ACs when every input value of that step is -1, 0 or 1, else MACs (so a first layer
  fed analog data counts MACs). Like NeuroBench, which decides once per layer call, the choice
  is made per step over the whole batch: the split depends on the batch size, and equals the
  harness's when snc simulates with the harness's batch size. Dense ops count every structural
  connection (weights and inputs all one; zero padding stays zero, so padded borders count
  less). Bias, pooling and normalisation are never counted.
* ActivationSparsity: zeros / elements over the outputs of all spiking populations, all steps
  and samples (inputs are not counted).
* MembraneUpdates, per sample: every neuron at the first step, then those whose membrane
  changed. snc counts a neuron when its input (synaptic current plus bias) is non-zero, which
  is not NeuroBench's count of changed membranes: a leak alone changes a membrane (the harness
  counts it, snc does not), and a neuron reset to zero at two steps in a row has a membrane of
  0 before and after (snc counts it, the harness does not). tests/test_neurobench_oracle.py
  measures both.
* ConnectionSparsity: zero weights / weights over Dense and Conv2d weight tensors.
* Footprint: bytes of every parameter array as stored (weights, biases, thresholds).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from snc.ir import Graph
from snc.ir.annotations import is_maxpool_construct

NEUROBENCH_COMMIT = "e521c28"


def effective_ops(x: np.ndarray, fanout: np.ndarray) -> np.ndarray:
    """Effective synaptic operations of one connection layer per row of inputs x (rows, n_in):
    sum over non-zero inputs of the number of non-zero weights each one reaches."""
    return (np.asarray(x).reshape(len(x), -1) != 0).astype(np.float64) @ np.asarray(fanout, dtype=np.float64)


def is_spiking_input(x: np.ndarray) -> bool:
    """NeuroBench's test: every value is -1, 0 or 1."""
    x = np.asarray(x)
    return bool(np.all((x == 0) | (x == 1) | (x == -1)))


def connection_sparsity(graph: Graph) -> float:
    zeros = total = 0
    for node in graph.nodes.values():
        if node.kind in ("Dense", "Conv2d") and not is_maxpool_construct(node):
            zeros += int(node.weight.size - np.count_nonzero(node.weight))
            total += int(node.weight.size)
    return round(zeros / total, 4) if total else 0.0


def footprint(graph: Graph) -> int:
    """Bytes of all parameter arrays as stored (NeuroBench: parameters plus buffers)."""
    total = 0
    for node in graph.nodes.values():
        for _, value in node.array_fields():
            total += int(value.nbytes)
        th = getattr(node, "threshold", None)
        if th is not None:
            total += int(np.asarray(th, dtype=np.float32).nbytes)
    return total


def membrane_updates(result) -> float:
    """Per sample: all neurons at the first step, then the neurons with non-zero input."""
    total = 0.0
    for p in result.populations.values():
        if not p.spiking:
            continue
        first = p.neurons
        later = p.active_updates[:, 1:].sum(axis=1) if p.timesteps > 1 else np.zeros(p.samples)
        total += float(np.mean(first + later))
    return total


def activation_sparsity(result) -> float:
    spikes = neuron_steps = 0.0
    for p in result.populations.values():
        if p.spiking:
            spikes += float(p.spikes.sum())
            neuron_steps += float(p.neurons) * p.timesteps * p.samples
    return 1.0 - spikes / neuron_steps if neuron_steps else 1.0


def neurobench(graph: Graph, result) -> dict[str, Any]:
    """The NeuroBench metrics of a run: its synaptic operations from a ``NeuroBenchCounter``
    recorder when one was attached, else from the connection layers snc's simulator counts in
    every run (``result.connections``, the same rule and the same input values)."""
    counts = result.extra.get("neurobench")
    if counts is None and result.connections:
        counts = {key: np.array([sum(float(getattr(c, attr)) for c in result.connections.values())])
                  for key, attr in (("effective_acs", "acs_per_sample"), ("effective_macs", "macs_per_sample"),
                                    ("dense", "dense_per_sample"))}
    if counts is None:
        raise ValueError("simulate with recorders=[NeuroBenchCounter()] to count NeuroBench synaptic operations")
    return {
        "Footprint": footprint(graph),
        "ConnectionSparsity": connection_sparsity(graph),
        "ActivationSparsity": activation_sparsity(result),
        "SynapticOperations": {
            "Effective_MACs": float(np.mean(counts["effective_macs"])),
            "Effective_ACs": float(np.mean(counts["effective_acs"])),
            "Dense": float(np.mean(counts["dense"])),
        },
        "MembraneUpdates": membrane_updates(result),
        "harness_rules": f"NeuroBench @ {NEUROBENCH_COMMIT}",
    }


def spikingbrain_energy(spikes_per_channel: float, add_energy_pj: float = 0.03, mac_energies_pj: dict[str, float] | None = None,
                        decimals: int = 3) -> dict[str, float]:
    """SpikingBrain's compute-only estimate (report section 5.5, Eq. 24): an operation costs
    (average spikes per channel) x (INT8 add energy), compared with a MAC. The report rounds the
    product to 0.034 pJ before comparing (``decimals``); savings are 1 - E_op / E_MAC."""
    macs = mac_energies_pj or {"fp16": 1.5, "int8": 0.23}
    per_op = round(spikes_per_channel * add_energy_pj, decimals)
    out = {"energy_per_op_pj": per_op}
    for name, e in macs.items():
        out[f"saving_vs_{name}"] = 1.0 - per_op / e
        out[f"ratio_vs_{name}"] = e / per_op
    return out
