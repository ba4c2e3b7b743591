"""Bookkeeping of the spikes a chunk produced: counts per sample and step and per neuron,
rasters, the synaptic operations the spikes cause (spikes times each neuron's non-zero fan-out,
exactly: ``PopulationStats.synops``, reported as ``synops_caused``) and, through
``synaptic_ops``, the effective synaptic operations of every connection layer (NeuroBench's
rules), which are what ``synops`` means in every report."""
from __future__ import annotations

import numpy as np
import torch

from .counting import column_counts, row_counts
from .synaptic_ops import note_spikes


def weighted_counts(flat: np.ndarray, digits: torch.Tensor) -> np.ndarray:
    """sum_j s_rj * f_j per row, exactly, with an int8 GEMM: f is split into base-128 digits."""
    parts = torch._int_mm(torch.from_numpy(flat.view(np.int8)), digits).to(torch.int64)
    weights = 128 ** torch.arange(parts.shape[1], dtype=torch.int64)
    return (parts * weights).sum(dim=1).numpy()


def record_spikes(sim, batch, st, pop, s: np.ndarray, t0: int, tc: int, raster_set) -> bool:
    """Book a chunk's spikes ``s`` (tc, B, n) of population ``pop``: spikes per sample and step,
    per neuron, rasters, the synaptic operations they cause (spikes x non-zero fan-out) where
    they need no float product, and the connection layers' effective operations once the
    chunk's last population is booked (synaptic_ops.note_spikes). Returns True when the caused
    operations are left to the end of the chunk (a float32 product with the fan-out that reuses
    the dense path's float spikes)."""
    b = batch.size
    first = batch.first
    flat = s.reshape(tc * b, -1)
    st.spikes[first:first + b, t0:t0 + tc] = row_counts(flat).reshape(tc, b).T
    st.neuron_spikes += column_counts(flat)
    fan = sim.plan.fanout[pop.name]
    later = False  # synaptic operations left to the end of the chunk (float32 product)
    if fan.any():
        if sim.uniform_fanout[pop.name]:
            # Every neuron reaches the same number of synapses: spikes x fan-out.
            st.synops[first:first + b, t0:t0 + tc] = st.spikes[first:first + b, t0:t0 + tc].astype(np.int64) * int(fan[0])
        elif pop.name in sim.fanout_f32:
            later = True
        else:
            st.synops[first:first + b, t0:t0 + tc] = weighted_counts(flat, sim.fanout_digits[pop.name]).reshape(tc, b).T
    for i in raster_set:
        if first <= i < first + b:
            st.rasters[i][t0:t0 + tc] = s[:, i - first, :]
    note_spikes(sim, batch, st, pop, s, t0, tc)
    return later
