"""The cycle-approximate cost model: simulated activity x a hardware profile -> time and energy.

Inputs are a spiking graph mapped onto cores (its blocks, ``snc.ir.annotations.all_blocks``,
from the mapping the ``map`` pass writes), a neuromorphic
hardware profile (snc/hw) and the per-step counts that ``ProjectedCounts`` gathers while the
event simulator runs. Per time step t and core c (averaged over the samples):

    synops[t,c]   synaptic operations performed in c: spikes arriving x the synapses they reach there
    active[t,c]   neuron updates of c's neurons with non-zero input; inactive = neurons - active
    msgs[t,c]     spike messages c sends: one per spike and destination core (blocks that
                  share a core share the message)
    ew, ns, chip  hops those messages travel east-west, north-south, and chip crossings

    core_time[t,c] = sum over the blocks on c of
                     synops t_synop + active t_active + inactive t_inactive + msgs t_spike
    step_time[t]   = max_c core_time[t,c] + (route time of the farthest message sent at t)
                     + barrier(tiles spanned by the used cores)
    latency        = sum_t step_time[t];  throughput = 1 / latency
    energy         = sum_t,c (synops E_synop + active E_active + inactive E_inactive + msgs E_spike
                     + ew E_ew + ns E_ns + chip E_chip + spikes E_fire + msgs E_msg)
                     + static power x (cores used / cores per chip) x latency
(the static power of the whole chips the network touches is reported beside it,
``static_energy_whole_chips_j``, not added). E_fire (``energy_spike_out``, per spike of a neuron
with outgoing synapses) and E_msg (``energy_message_out``, per message, host deliveries included)
are optional: 0 unless the profile gives them (SANA-FE's soma and axon-out energies).

The barrier grows linearly from barrier_min (1 tile) to barrier_max (barrier_tiles tiles) and
beyond, linearly. Profiles marked all-inclusive (TrueNorth) carry their whole energy in E_synop
and zeros elsewhere. Spikes from a spike-encoded input come from the host: they cost their
synaptic operations and one local delivery per destination core, no hops. A direct (analog)
input is computed by the host once per sample (the first layer's input current, programmed as
bias); its MACs are reported separately.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from snc.errors import MappingError
from snc.hw import HardwareProfile
from snc.hw.mesh import Mesh
from snc.ir import INPUT, NEURON, Graph
from snc.ir.annotations import all_blocks
from snc.ir.models import model_of

from ..plan import Plan
from .recorders import ProjectedCounts


@dataclass
class Block:
    population: str
    start: int
    stop: int
    core: int
    neurons: int = 0  # neurons that exist in [start, stop) (pruned ones excluded)
    update_cost: float = 1.0  # one neuron update of this population's model, relative to IF (ir/models.py)
    index: np.ndarray | None = None  # flat neuron indices of the block (snc.ir.annotations.Block.indices)


@dataclass
class SourceLayout:
    """Column layout of one source population's projected-count matrix."""

    own_blocks: list[int]  # global block indices of the source's own blocks (empty for host inputs)
    dest_blocks: list[int]  # global block indices of the destination blocks it reaches
    # column offsets
    spikes: slice = field(default_factory=lambda: slice(0, 0))
    synops: slice = field(default_factory=lambda: slice(0, 0))
    msgs: slice = field(default_factory=lambda: slice(0, 0))
    ew: slice = field(default_factory=lambda: slice(0, 0))
    ns: slice = field(default_factory=lambda: slice(0, 0))
    chip: slice = field(default_factory=lambda: slice(0, 0))
    route_time: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per own block: farthest message


def _update_cost(node) -> float:
    model = model_of(node.kind) if node.role == NEURON else None
    return 1.0 if model is None else float(model.update_cost)


def blocks_of(graph: Graph) -> list[Block]:
    blocks = []
    placed = all_blocks(graph)
    for name in graph.topological_order():
        node = graph.nodes[name]
        keep = getattr(node, "keep", None)
        flat = None if keep is None else keep.reshape(-1)
        for b in placed.get(name, ()):
            idx = b.indices()
            n = int(idx.size) if flat is None else int(np.count_nonzero(flat[idx]))
            blocks.append(Block(name, b.start, b.stop, b.core, n, _update_cost(node), idx))
    return blocks


class CycleModel:
    """Builds the projection matrices for the simulator and turns the counts into time/energy."""

    def __init__(self, graph: Graph, plan: Plan, profile: HardwareProfile) -> None:
        if profile.kind != "neuromorphic":
            raise MappingError(f"profile {profile.name!r} is an ANN profile; the cycle model needs a neuromorphic one")
        self.graph = graph
        self.plan = plan
        self.profile = profile
        self.mesh = Mesh.from_profile(profile)
        self.blocks = blocks_of(graph)
        if not self.blocks:
            raise MappingError("the graph carries no core mapping; run the map pass first")
        self.by_pop: dict[str, list[int]] = {}
        for i, b in enumerate(self.blocks):
            self.by_pop.setdefault(b.population, []).append(i)
        unmapped = [p.name for p in plan.populations if p.node.role != INPUT and p.name not in self.by_pop and p.present > 0]
        if unmapped:
            raise MappingError(f"populations without a core mapping: {unmapped}; run the map pass for this profile")
        self.cores = np.array([b.core for b in self.blocks])
        self._build()

    # --- matrices for ProjectedCounts ---------------------------------------------------------
    def _build(self) -> None:
        p = self.profile
        t_ew, t_ns, t_chip = p["time_hop_ew"], p["time_hop_ns"], p["time_chip_hop"]
        self.layouts: dict[str, SourceLayout] = {}
        spike_mats: dict[str, Any] = {}
        active_mats: dict[str, Any] = {}
        for pop in self.plan.populations:
            name = pop.name
            node = pop.node
            own = self.by_pop.get(name, [])
            n = pop.size
            if own:
                ind = np.zeros((n, len(own)))
                for k, bi in enumerate(own):
                    b = self.blocks[bi]
                    ind[b.index, k] = 1.0
                keep = getattr(node, "keep", None)
                if keep is not None:
                    ind *= keep.reshape(-1, 1)
                active_mats[name] = sp.csr_matrix(ind)
            else:
                ind = None
            outgoing = self.plan.outgoing.get(name, [])
            if node.role == INPUT and (node.encoding == "direct" or not outgoing):
                continue
            # Synapses from each source neuron into each destination block.
            dest: list[int] = []
            cols = []
            for proj in outgoing:
                m = proj.matrix.tocsr()
                for bi in self.by_pop.get(proj.target, []):
                    b = self.blocks[bi]
                    sub = m[b.index]
                    cols.append(np.diff(sub.tocsc().indptr).astype(np.float64))
                    dest.append(bi)
            if not dest:
                continue
            syn = np.stack(cols, axis=1)  # (n, D)
            reach = syn > 0
            layout = SourceLayout(own_blocks=own, dest_blocks=dest)
            parts = []
            col = 0
            if own:
                parts.append(ind)
                layout.spikes = slice(col, col + len(own))
                col += len(own)
            parts.append(syn)
            layout.synops = slice(col, col + len(dest))
            col += len(dest)
            # One message per spike and destination core: blocks sharing a core share it.
            dst_core, col_core = np.unique(self.cores[dest], return_inverse=True)
            if len(dst_core) < len(dest):
                hit = np.zeros((n, len(dst_core)), dtype=bool)
                for j, cj in enumerate(col_core.ravel()):
                    hit[:, cj] |= reach[:, j]
                reach = hit
            msgs = reach.sum(axis=1).astype(np.float64)
            if own:
                src_core = np.zeros(n, dtype=np.int64)
                for bi in own:
                    b = self.blocks[bi]
                    src_core[b.index] = b.core
                ew, ns, ch = self.mesh.hops(src_core[:, None], dst_core[None, :])
                per = {"msgs": msgs, "ew": (reach * ew).sum(axis=1), "ns": (reach * ns).sum(axis=1), "chip": (reach * ch).sum(axis=1)}
                for key, values in per.items():
                    parts.append(ind * values[:, None])
                    setattr(layout, key, slice(col, col + len(own)))
                    col += len(own)
                # Route time of the farthest message a block sends.
                route = (ew * t_ew + ns * t_ns + ch * t_chip) * reach
                layout.route_time = np.array([route[self.blocks[bi].index].max(initial=0.0) for bi in own])
            else:  # host input: local deliveries only, counted as one column
                parts.append(msgs[:, None])
                layout.msgs = slice(col, col + 1)
                col += 1
            spike_mats[name] = sp.csr_matrix(np.hstack(parts))
            self.layouts[name] = layout
        self.recorder = ProjectedCounts(spike_mats, active_mats)

    # --- costs ----------------------------------------------------------------------------------
    def barrier(self) -> float:
        p = self.profile
        tiles = self.mesh.tiles_spanned(self.cores)
        span = max(1, int(p["barrier_tiles"]) - 1)
        return float(p["barrier_min"] + (p["barrier_max"] - p["barrier_min"]) * (tiles - 1) / span)

    def per_core_counts(self, projected: dict, samples: int, timesteps: int) -> dict[str, np.ndarray]:
        """(T, n_blocks) arrays per sample: synops, active, inactive, msgs, ew, ns, chip, and a
        (T, n_blocks) flag of blocks that spiked; plus host messages (T,)."""
        nb = len(self.blocks)
        out = {k: np.zeros((timesteps, nb)) for k in ("synops", "active", "msgs", "ew", "ns", "chip", "spikes")}
        out["host_msgs"] = np.zeros(timesteps)
        for name, layout in self.layouts.items():
            counts = projected["spikes"][name]
            out["synops"][:, layout.dest_blocks] += counts[:, layout.synops]
            if layout.own_blocks:
                for key in ("spikes", "msgs", "ew", "ns", "chip"):
                    out[key][:, layout.own_blocks] += counts[:, getattr(layout, key)]
            else:
                out["host_msgs"] += counts[:, layout.msgs].sum(axis=1)
        for name, idx in self.by_pop.items():
            if name in projected["active"]:
                out["active"][:, idx] += projected["active"][name]
        for key in out:
            out[key] = out[key] / samples
        neurons = np.array([b.neurons for b in self.blocks], dtype=np.float64)
        out["inactive"] = neurons[None, :] - out["active"]
        return out

    def evaluate(self, projected: dict, samples: int, timesteps: int) -> dict[str, Any]:
        """Time and energy per inference, per core and per layer."""
        p = self.profile
        c = self.per_core_counts(projected, samples, timesteps)
        cost = np.array([b.update_cost for b in self.blocks], dtype=np.float64)[None, :]  # 1 for IF and LIF
        block_time = (c["synops"] * p["time_synop"] + c["active"] * (cost * p["time_neuron_active"])
                      + c["inactive"] * (cost * p["time_neuron_inactive"]) + c["msgs"] * p["time_spike_local"])
        # A core serves its blocks one after the other: its time is the sum over its blocks.
        core_ids, of_block = np.unique(self.cores, return_inverse=True)
        core_time = np.zeros((block_time.shape[0], len(core_ids)))
        np.add.at(core_time.T, of_block.ravel(), block_time.T)
        route = np.zeros(len(self.blocks))
        for layout in self.layouts.values():
            if layout.own_blocks:
                route[layout.own_blocks] = np.maximum(route[layout.own_blocks], layout.route_time)
        sent = c["spikes"] > 0
        net = np.where(sent, route[None, :], 0.0).max(axis=1, initial=0.0)
        barrier = self.barrier()
        step_time = core_time.max(axis=1, initial=0.0) + net + barrier
        latency = float(step_time.sum())
        e_fire, e_msg = float(p.get("energy_spike_out", 0.0)), float(p.get("energy_message_out", 0.0))
        # Dynamic energy per block, by component (J per inference).
        parts = {
            "synaptic_ops": (c["synops"] * p["energy_synop"]).sum(axis=0),
            "neuron_updates": (c["active"] * (cost * p["energy_neuron_active"])
                               + c["inactive"] * (cost * p["energy_neuron_inactive"])).sum(axis=0),
            "spikes_on_chip": (c["msgs"] * (p["energy_spike_local"] + e_msg) + c["ew"] * p["energy_hop_ew"]
                               + c["ns"] * p["energy_hop_ns"] + c["spikes"] * e_fire).sum(axis=0),
            "spikes_between_chips": (c["chip"] * p["energy_chip_hop"]).sum(axis=0),
        }
        energy_core = sum(parts.values())
        host_delivery = float(c["host_msgs"].sum() * (p["energy_spike_local"] + e_msg))
        chips = int(len(np.unique(self.cores // self.mesh.cores_per_chip)))
        used = int(len(np.unique(self.cores)))
        # Static power is given per chip; the network is charged for the cores it occupies (the
        # rest of a chip can run other work). The whole-chip figure is reported beside it.
        static = float(p["static_power"]) * used / self.mesh.cores_per_chip * latency
        static_chips = float(p["static_power"]) * chips * latency
        dynamic = float(energy_core.sum()) + host_delivery
        layers = {}
        n_blocks = len(self.blocks)
        for name, idx in self.by_pop.items():
            layers[name] = {
                "cores": len(idx),
                "synops": float(c["synops"][:, idx].sum()),
                "active_updates": float(c["active"][:, idx].sum()),
                "inactive_updates": float(c["inactive"][:, idx].sum()),
                "messages": float(c["msgs"][:, idx].sum()),
                "hops": float((c["ew"] + c["ns"] + c["chip"])[:, idx].sum()),
                "energy_j": float(energy_core[idx].sum()) + static * len(idx) / n_blocks,
                "energy_components_j": {**{k: float(v[idx].sum()) for k, v in parts.items()},
                                        "static": static * len(idx) / n_blocks},
                "latency_s": float(block_time[:, idx].max(axis=1, initial=0.0).sum()),
            }
        components = {k: float(v.sum()) for k, v in parts.items()}
        components["spikes_on_chip"] += host_delivery  # input spikes delivered from the host
        components["static"] = static
        return {
            "energy_j": dynamic + static,
            "energy_components_j": components,
            "dynamic_energy_j": dynamic,
            "static_energy_j": static,
            "static_energy_whole_chips_j": static_chips,
            "cores_used": used,
            "host_delivery_energy_j": host_delivery,
            "latency_s": latency,
            "throughput_per_s": 1.0 / latency if latency > 0 else float("inf"),
            "step_time_s": step_time,
            "barrier_s": barrier,
            "chips": chips,
            "cores": used,
            "blocks": n_blocks,
            "layers": layers,
            "per_core": {k: v.sum(axis=0) for k, v in c.items() if k != "host_msgs"},
            "core_energy_j": energy_core,
            "core_ids": self.cores,
        }
