"""How many neuromorphic cores and chips a decoder's weights need, with every static-weight
projection held as synapses (the weights as synaptic memory, SpikingBrain / Loihi 2 style).

For a projection W (n_out x n_in) on a chip profile (synaptic memory bits per core M, at most
F inputs per neuron, N neurons per core, b bits per weight plus o bits of per-synapse
overhead when stored sparse):

* fan-in splits: s = ceil(n_in / F) partial sums per output neuron, each on its own cores
  (their partial sums merged by one more neuron per output: counted as s > 1 -> n_out extra);
* per core, a slice of n_in / s inputs fits min(N, floor(M / (ceil(n_in / s) (b + o)))) outputs;
* cores = s ceil(n_out / that), plus the merging neurons' cores.

A layer's projections are summed (q, k, v, o and the MLP's gate, up, down; the gate of a linear
block); the LM head is one more projection (d x V) unless left out. The brief's other figure,
``max_synapses_per_chip`` (120 M on Loihi 2), gives a second, lower bound. Embedding lookups
run on the host and need no synapses. Neuron state for the dense compute (norms, attention
products, the recurrent state) is not counted: it runs off the synaptic cores.
"""
from __future__ import annotations

import math

from snc.hw import HardwareProfile, load_profile

from .longctx import LMConfig


def projections(cfg: LMConfig, head: bool = True) -> list[tuple[str, int, int]]:
    """(name, n_out, n_in) of every static-weight projection of the decoder."""
    d, f, h, hkv, dh = cfg.hidden, cfg.mlp, cfg.heads, cfg.kv_heads, cfg.head_dim
    out = []
    for i, mixer in enumerate(cfg.mixers):
        out += [(f"{i}.q", h * dh, d), (f"{i}.k", hkv * dh, d), (f"{i}.v", hkv * dh, d), (f"{i}.o", d, h * dh)]
        if mixer == "linear":
            out.append((f"{i}.g", h * dh, d))
        out += [(f"{i}.gate", f, d), (f"{i}.up", f, d), (f"{i}.down", d, f)]
    if head:
        out.append(("head", cfg.vocab, d))
    return out


def projection_cores(n_out: int, n_in: int, profile: HardwareProfile, weight_bits: int, sparse: bool = False) -> int:
    fan_in, neurons, memory = int(profile["max_fan_in"]), int(profile["neurons_per_core"]), int(profile["synaptic_memory_bits"])
    bits = weight_bits + (int(profile["synapse_overhead_bits"]) if sparse else 0)
    splits = math.ceil(n_in / fan_in)
    per_core = min(neurons, memory // (math.ceil(n_in / splits) * bits))
    if per_core < 1:
        raise ValueError(f"one neuron's {math.ceil(n_in / splits)} synapses of {bits} bits exceed a core's memory")
    cores = splits * math.ceil(n_out / per_core)
    if splits > 1:  # the merging neurons (one per output, fan-in = splits)
        cores += math.ceil(n_out / neurons)
    return cores


def footprint(cfg: LMConfig, profile: HardwareProfile | str = "loihi2", weight_bits: int = 8, head: bool = True,
              sparse: bool = False) -> dict:
    p = load_profile(profile) if isinstance(profile, str) else profile
    rows = projections(cfg, head)
    weights = sum(o * i for _, o, i in rows)
    cores = sum(projection_cores(o, i, p, weight_bits, sparse) for _, o, i in rows)
    cpc = int(p["cores_per_chip"])
    out = {"model": cfg.name, "hw": p.name, "weight_bits": weight_bits, "projection_weights": weights,
           "cores": cores, "chips": math.ceil(cores / cpc), "lm_head": head}
    if "max_synapses_per_chip" in p.quantities:
        out["chips_by_synapse_count"] = math.ceil(weights / float(p["max_synapses_per_chip"]))
    return out
