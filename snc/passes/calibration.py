"""The calibration analysis: what the calibration data does in every population, computed once.

One analog (rate-limit) forward pass of the graph over the calibration set (``snc.backends.analog``,
the ANN the graph was converted from) gives, per spiking population P and in ANN units (a_P, the
ReLU activation P stands for; invariant under folding, conversion and threshold balancing):

* ``lam``          the p-th percentile of P's positive activations (threshold balancing);
* ``max``, ``mean``, ``active_fraction``;
* ``never_active`` neurons whose activation is 0 on every calibration sample;
* ``rates``        per-neuron firing rate in spikes per step, mean over samples of clip(a / theta, 0, 1),
                   once thresholds are known (set by ``balance``, or measured in the rate limit).

Passes read it from ``ctx.analysis`` (``balance``, ``map``, the compile report) instead of
simulating; a pass that changes what it describes declares ``invalidates=("activity",)`` in its
contract and the pipeline drops the cache after it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from snc.backends import analog
from snc.errors import CalibrationError, InvalidData
from snc.ir import Graph


@dataclass
class PopulationActivity:
    lam: float  # the percentile of positive activations (ANN units)
    max: float
    mean: float
    active_fraction: float
    clipped_fraction: float
    never_active: np.ndarray  # (n,) bool
    neuron_max: np.ndarray  # (n,) float32

    def clipped(self, lam: float) -> float:
        """Fraction of activations above ``lam`` (while the values are still held)."""
        values = getattr(self, "_values", None)
        if values is None:
            return float(np.mean(self.neuron_max > lam))
        return float(np.count_nonzero(values > lam) / max(1, values.size))


class CalibrationAnalysis:
    """Lazily computed, cached statistics of the calibration data (see module docstring)."""

    def __init__(self, calibration: np.ndarray | None, percentile: float = 99.9) -> None:
        self.calibration = calibration
        self.percentile = float(percentile)
        self.evaluations = 0  # analog forward passes over the calibration set
        self._activity: dict[str, PopulationActivity] | None = None
        self._rates: dict[str, np.ndarray] | None = None

    def invalidate(self) -> None:
        self._activity = None
        self._rates = None

    def _evaluate(self, graph: Graph, pops: list[str], mode: str) -> dict[str, np.ndarray]:
        if self.calibration is None:
            raise CalibrationError("this pass needs calibration data (snc compile --calib X.npy)")
        if len(self.calibration) == 0:
            raise CalibrationError("the calibration set is empty")
        try:
            out = analog.evaluate(graph, self.calibration, keep=pops, mode=mode)
        except InvalidData as exc:
            raise CalibrationError(f"calibration data does not fit the model: {exc.message}", node=exc.node) from None
        self.evaluations += 1
        return out

    def activity(self, graph: Graph, pops: list[str]) -> dict[str, PopulationActivity]:
        """Statistics of the ReLU activations of ``pops`` (ANN units), from one forward pass."""
        if self._activity is not None and all(p in self._activity for p in pops):
            return self._activity
        acts = self._evaluate(graph, pops, "relu")
        p = self.percentile
        stats = {}
        for name in pops:
            a = acts[name].reshape(len(acts[name]), -1)
            positive = a[a > 0]
            lam = float(np.percentile(positive, p)) if positive.size else 0.0
            stats[name] = PopulationActivity(
                lam=lam,
                max=float(a.max(initial=0.0)),
                mean=float(a.mean()) if a.size else 0.0,
                active_fraction=float(positive.size / max(1, a.size)),
                clipped_fraction=float(np.count_nonzero(a > lam) / max(1, a.size)) if positive.size else 0.0,
                never_active=~np.any(a > 0, axis=0),
                neuron_max=a.max(axis=0).astype(np.float32) if len(a) else np.zeros(a.shape[1], np.float32),
            )
            # Rates once the threshold is known: balance sets theta = lam (or a capped value).
            stats[name]._values = a  # kept until balance has read the rates (then dropped)
        self._activity = stats
        return stats

    def set_thresholds(self, thresholds: dict[str, np.ndarray | float]) -> None:
        """Per-neuron rates from the cached activations and the thresholds balance chose."""
        if self._activity is None:
            return
        rates = {}
        for name, theta in thresholds.items():
            st = self._activity.get(name)
            values = getattr(st, "_values", None)
            if values is None:
                continue
            th = np.broadcast_to(np.asarray(theta, np.float64).reshape(-1) if np.ndim(theta) else np.float64(theta), values.shape[1:])
            rates[name] = np.clip(values / np.maximum(th, 1e-30), 0.0, 1.0).mean(axis=0)
        for st in self._activity.values():
            st.__dict__.pop("_values", None)
        self._rates = rates

    def rates(self, graph: Graph) -> dict[str, np.ndarray] | None:
        """Per-neuron spikes per step of every spiking population (rate limit), or None without
        calibration data. From balance's thresholds when known, else one rate-limit pass."""
        if self.calibration is None or len(self.calibration) == 0:
            return None
        pops = [n for n in graph.topological_order() if graph.nodes[n].role == "neuron"]
        if self._rates is not None and all(p in self._rates for p in pops):
            return self._rates
        try:
            out = self._evaluate(graph, pops, "rate")
        except Exception:  # e.g. a leaky population has no closed-form rate: no estimate
            return None
        self._rates = {p: out[p].reshape(len(out[p]), -1).mean(axis=0) for p in pops}
        return self._rates
