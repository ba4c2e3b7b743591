"""What a simulation returns: predictions and per-population activity counts."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .synaptic_ops import ConnectionOps


@dataclass
class PopulationStats:
    """Activity of one population over all simulated samples.

    spikes:          (N, T) spikes emitted per sample and step (all neurons together).
    incoming:        {connection layer: ConnectionOps} the effective synaptic operations of the
                     Dense/Conv2d layers that feed this population (NeuroBench's rules,
                     backends/sim/synaptic_ops.py): what "synops" means in every report
                     (docs/json_schema.md, section "synops"). None when the backend that made
                     the result did not count them (e.g. Lava).
    synops:          (N, T) synaptic operations this population's spikes *cause* per sample and
                     step: each spike times the number of non-zero composed synapses it reaches
                     in its target populations (for a direct analog input: every non-zero input
                     value times its non-zero fan-out, MACs the host performs). Source-side, the
                     chip's composed synapses: reported as ``synops_caused``, not ``synops``.
    active_updates:  (N, T) neurons whose input (synaptic current plus bias) was non-zero.
    neuron_spikes:   (n,) spikes of each neuron summed over samples and steps.
    rasters:         {sample index: (T, n) bool} for the samples asked for.
    booked:          connection layers counted while this population closed each chunk;
                     ``SimResult`` moves them to the ``incoming`` of the population they feed.
    """

    name: str
    kind: str
    neurons: int
    timesteps: int
    spikes: np.ndarray
    synops: np.ndarray
    active_updates: np.ndarray
    neuron_spikes: np.ndarray
    analog: bool = False  # a direct (analog) input: the operations it causes are MACs
    spiking: bool = False  # a spiking population (its node's role is "neuron"): IF, LIF, ...
    rasters: dict[int, np.ndarray] = field(default_factory=dict)
    chunks_event: int = 0
    chunks_dense: int = 0
    booked: dict[str, ConnectionOps] = field(default_factory=dict)
    incoming: dict[str, ConnectionOps] | None = None

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

    def _incoming_sum(self, attr: str) -> float | None:
        if self.incoming is None:
            return None
        return float(sum(getattr(c, attr) for c in self.incoming.values()))

    @property
    def synops_per_sample(self) -> float | None:
        """Effective synaptic operations of the incoming connection layers (ACs + MACs), per
        sample over all steps; None when not counted."""
        return self._incoming_sum("synops_per_sample")

    @property
    def effective_acs_per_sample(self) -> float | None:
        return self._incoming_sum("acs_per_sample")

    @property
    def effective_macs_per_sample(self) -> float | None:
        return self._incoming_sum("macs_per_sample")

    @property
    def dense_ops_per_sample(self) -> float | None:
        return self._incoming_sum("dense_per_sample")

    @property
    def synop_kind(self) -> str | None:
        """"AC", "MAC" or "AC+MAC": the kinds of the operations in ``synops_per_sample``;
        None when there are none (or they were not counted)."""
        acs, macs = self.effective_acs_per_sample, self.effective_macs_per_sample
        if not acs and not macs:
            return None
        return "AC+MAC" if acs and macs else "AC" if acs else "MAC"

    @property
    def synops_caused_per_sample(self) -> float:
        """The operations this population's spikes cause (``synops``), per sample."""
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
    connections: {connection layer: ConnectionOps} every Dense/Conv2d layer's effective synaptic
                 operations (topological order), each also in its destination's ``incoming``;
                 empty when the backend did not count them.
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
    connections: dict[str, ConnectionOps] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The connection layers were counted on whichever population closed each chunk (see
        # synaptic_ops); each belongs to the population it feeds.
        booked = [c for p in self.populations.values() for c in p.booked.values()]
        if not booked:
            return
        for p in self.populations.values():
            p.booked = {}
            p.incoming = {}
        for c in booked:
            self.connections[c.name] = c
            if c.destination in self.populations:
                self.populations[c.destination].incoming[c.name] = c

    @property
    def samples(self) -> int:
        return int(len(self.predictions))

    @property
    def accuracy(self) -> float | None:
        if self.labels is None:
            return None
        return float(np.mean(self.predictions == self.labels))

    @property
    def counted(self) -> bool:
        """Whether the connection layers' effective operations were counted (snc's simulator)."""
        return any(p.incoming is not None for p in self.populations.values())

    def spiking(self) -> list[PopulationStats]:
        return [p for p in self.populations.values() if p.kind not in ("Readout",) and not p.analog]

    def _connections_sum(self, attr: str) -> float | None:
        if not self.counted:
            return None
        return float(sum(getattr(c, attr) for c in self.connections.values()))

    def totals(self) -> dict[str, Any]:
        spiking = [p for p in self.populations.values() if p.spiking]
        spikes = sum(p.spikes_per_sample for p in spiking)
        neuron_steps = sum(p.neurons * p.timesteps for p in spiking)
        caused = sum(p.synops_caused_per_sample for p in self.populations.values() if not p.analog)
        macs = sum(p.synops_caused_per_sample for p in self.populations.values() if p.analog)
        return {
            "neurons": int(sum(p.neurons for p in spiking)),
            "spikes_per_sample": spikes,
            "rate": spikes / neuron_steps if neuron_steps else 0.0,
            "activation_sparsity": 1.0 - (spikes / neuron_steps if neuron_steps else 0.0),
            "synops_per_sample": self._connections_sum("synops_per_sample"),
            "effective_acs_per_sample": self._connections_sum("acs_per_sample"),
            "effective_macs_per_sample": self._connections_sum("macs_per_sample"),
            "dense_ops_per_sample": self._connections_sum("dense_per_sample"),
            "synops_caused_per_sample": caused,
            "analog_macs_per_sample": macs,
        }

    def to_json(self) -> dict[str, Any]:
        """The ``snc simulate --json`` document; every key is described in docs/json_schema.md."""
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
                    "effective_acs_per_sample": p.effective_acs_per_sample,
                    "effective_macs_per_sample": p.effective_macs_per_sample,
                    "dense_ops_per_sample": p.dense_ops_per_sample,
                    "synop_kind": p.synop_kind,
                    "synops_caused_per_sample": p.synops_caused_per_sample,
                    "active_updates_per_sample": float(p.active_updates.sum() / max(1, p.samples)),
                    "neuron_updates_per_sample": p.neuron_updates_per_sample,
                }
            )
        connections = [
            {
                "name": c.name,
                "kind": c.kind,
                "destination": c.destination,
                "synops_per_sample": c.synops_per_sample,
                "effective_acs_per_sample": c.acs_per_sample,
                "effective_macs_per_sample": c.macs_per_sample,
                "dense_ops_per_sample": c.dense_per_sample,
            }
            for c in self.connections.values()
        ]
        out = {
            "accuracy": self.accuracy,
            "samples": self.samples,
            "timesteps": self.timesteps,
            "arithmetic": self.arithmetic,
            "timing": self.timing,
            "layers": layers,
            "connections": connections,
            "totals": self.totals(),
            "wall_seconds": self.wall_seconds,
            "units": {
                "synops": "effective synaptic operations (NeuroBench) of each layer's incoming connection layers, "
                          "per sample summed over time steps; docs/json_schema.md#synops",
                "synops_caused": "operations a layer's spikes cause through its outgoing composed synapses (source side), "
                                 "per sample; not NeuroBench's count",
            },
        }
        if self.overflow:
            out["overflow"] = self.overflow
        return out
