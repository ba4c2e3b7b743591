"""What a simulation returns: predictions and per-population activity counts."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class PopulationStats:
    """Activity of one population over all simulated samples.

    spikes:          (N, T) spikes emitted per sample and step (all neurons together).
    synops:          (N, T) synaptic operations caused per sample and step: each spike times the
                     number of non-zero synapses it reaches (for a direct analog input: every
                     non-zero input value times its non-zero fan-out, counted as MACs).
    active_updates:  (N, T) neurons whose input (synaptic current plus bias) was non-zero.
    neuron_spikes:   (n,) spikes of each neuron summed over samples and steps.
    rasters:         {sample index: (T, n) bool} for the samples asked for.
    """

    name: str
    kind: str
    neurons: int
    timesteps: int
    spikes: np.ndarray
    synops: np.ndarray
    active_updates: np.ndarray
    neuron_spikes: np.ndarray
    analog: bool = False  # a direct (analog) input: synops are MACs
    spiking: bool = False  # a spiking population (its node's role is "neuron"): IF, LIF, ...
    rasters: dict[int, np.ndarray] = field(default_factory=dict)
    chunks_event: int = 0
    chunks_dense: int = 0

    @property
    def samples(self) -> int:
        return int(self.spikes.shape[0])

    @property
    def spikes_per_sample(self) -> float:
        return float(self.spikes.sum() / max(1, self.samples))

    @property
    def rate(self) -> float:
        """Spikes per neuron per step."""
        return self.spikes_per_sample / max(1, self.neurons * self.timesteps)

    @property
    def synops_per_sample(self) -> float:
        return float(self.synops.sum() / max(1, self.samples))

    @property
    def neuron_updates_per_sample(self) -> int:
        return self.neurons * self.timesteps


@dataclass
class SimResult:
    """Outcome of ``simulate``.

    predictions: (N,) argmax of the readout.
    outputs:     {readout name: (N, n_out)}; membrane readouts give v[T] / T (an estimate of the
                 ANN logits), spike-count readouts give counts.
    populations: {name: PopulationStats} in topological order (inputs first).
    """

    predictions: np.ndarray
    outputs: dict[str, np.ndarray]
    populations: dict[str, PopulationStats]
    timesteps: int
    arithmetic: str
    timing: str
    labels: np.ndarray | None = None
    wall_seconds: float = 0.0
    overflow: dict[str, dict[str, int]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # what attached recorders gathered

    @property
    def samples(self) -> int:
        return int(len(self.predictions))

    @property
    def accuracy(self) -> float | None:
        if self.labels is None:
            return None
        return float(np.mean(self.predictions == self.labels))

    def spiking(self) -> list[PopulationStats]:
        return [p for p in self.populations.values() if p.kind not in ("Readout",) and not p.analog]

    def totals(self) -> dict[str, Any]:
        spiking = [p for p in self.populations.values() if p.spiking]
        spikes = sum(p.spikes_per_sample for p in spiking)
        neuron_steps = sum(p.neurons * p.timesteps for p in spiking)
        synops = sum(p.synops_per_sample for p in self.populations.values() if not p.analog)
        macs = sum(p.synops_per_sample for p in self.populations.values() if p.analog)
        return {
            "neurons": int(sum(p.neurons for p in spiking)),
            "spikes_per_sample": spikes,
            "rate": spikes / neuron_steps if neuron_steps else 0.0,
            "activation_sparsity": 1.0 - (spikes / neuron_steps if neuron_steps else 0.0),
            "synops_per_sample": synops,
            "analog_macs_per_sample": macs,
        }

    def to_json(self) -> dict[str, Any]:
        layers = []
        for p in self.populations.values():
            layers.append(
                {
                    "name": p.name,
                    "kind": p.kind,
                    "spiking": p.spiking,
                    "neurons": p.neurons,
                    "spikes_per_sample": p.spikes_per_sample,
                    "rate": p.rate,
                    "sparsity": 1.0 - p.rate,
                    "synops_per_sample": p.synops_per_sample,
                    "synop_kind": "MAC" if p.analog else "AC",
                    "active_updates_per_sample": float(p.active_updates.sum() / max(1, p.samples)),
                    "neuron_updates_per_sample": p.neuron_updates_per_sample,
                }
            )
        out = {
            "accuracy": self.accuracy,
            "samples": self.samples,
            "timesteps": self.timesteps,
            "arithmetic": self.arithmetic,
            "timing": self.timing,
            "layers": layers,
            "totals": self.totals(),
            "wall_seconds": self.wall_seconds,
        }
        if self.overflow:
            out["overflow"] = self.overflow
        return out
