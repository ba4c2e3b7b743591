"""Energy of spike-coded projections, compute only, the way SpikingBrain's report counts it.

A projection W (n_out x n_in) fed by coded input performs one addition per event and output:
``effective_acs = events x n_out``; its dense equivalent performs ``n_in x n_out`` MACs. Per
replaced MAC the coded projection therefore costs ``spikes_per_channel x E_add``
(SpikingBrain Eq. 24: 1.13 x 0.03 pJ = 0.034 pJ), against ``E_MAC`` of the baseline format
(1.5 pJ FP16, 0.23 pJ INT8 at 45 nm; Horowitz 2014, profile ``horowitz45``).

Left out, as in the report (its App. C.2): the V_th rescale multiply per output, the bit-plane
shift-add of bitwise coding, memory traffic and control. ``snc estimate`` reports those
separately where it models them.
"""
from __future__ import annotations

from dataclasses import dataclass

from snc.hw import HardwareProfile, load_profile


@dataclass(frozen=True)
class OpEnergy:
    """Per-operation energies in joules."""

    add: float  # one addition of a coded event (INT8 add)
    mac: dict  # format -> one MAC of the dense baseline

    @classmethod
    def from_profile(cls, profile: HardwareProfile | str = "horowitz45") -> "OpEnergy":
        p = load_profile(profile) if isinstance(profile, str) else profile
        return cls(add=float(p["energy_add_int8"]),
                   mac={"fp16": float(p["energy_mac_fp16"]), "int8": float(p["energy_mac_int8"]),
                        "fp32": float(p["energy_mac_fp32"])})


def per_replaced_mac(spikes_per_channel: float, ops: OpEnergy) -> float:
    """Energy (J) a coded projection spends where the dense one spends one MAC."""
    return float(spikes_per_channel) * ops.add


def saving(coded: float, mac: float) -> float:
    """Fraction saved against one MAC: 1 - coded / mac."""
    return 1.0 - coded / mac


def projection(events: int, n_in_entries: int, n_out: int, ops: OpEnergy, baseline: str = "fp16") -> dict:
    """Counts and energy of one coded projection over ``n_in_entries`` input entries (tokens x
    n_in) that produced ``events`` events: effective ACs, the dense MACs it replaces, and both
    energies (J)."""
    acs = int(events) * int(n_out)
    macs = int(n_in_entries) * int(n_out)
    return {"effective_acs": acs, "effective_macs": macs, "energy_j": acs * ops.add,
            "baseline_energy_j": macs * ops.mac[baseline], "baseline": baseline}


def per_event(coding: str, ops: OpEnergy) -> float:
    """Energy (J) of one event reaching one output at 45 nm: an INT8 addition for binary, ternary
    and bit-plane codings (a sign or a shift is free in this count), an INT8 MAC for a graded
    event (its payload multiplies the weight)."""
    return ops.mac["int8"] if coding == "graded" else ops.add


def on_chip(events: float, n_out: int, profile="loihi2") -> dict:
    """Coded projection events on a neuromorphic profile (per token): one synaptic operation per
    event and output (a graded event's payload at the same cost: Loihi 2's brief calls 8-bit
    payloads "negligible extra energy") and one update of each output neuron. Projections only:
    the dense compute (norms, attention products) does not run on the synaptic cores."""
    from snc.hw import load_profile

    p = load_profile(profile) if isinstance(profile, str) else profile
    synops = float(events) * int(n_out)
    return {"synops": synops, "energy_j": synops * float(p["energy_synop"]) + int(n_out) * float(p["energy_neuron_active"]),
            "hw": p.name}
