"""Pseudo-spiking evaluation of a PyTorch language model: the input of every chosen projection
(``nn.Linear``) is replaced by V_th x count, the value its spike trains reconstruct exactly
(snc.ir.spike_coding), which is how SpikingBrain runs its coded models on GPUs. The counts
seen by each projection are gathered for the coding statistics of snc.ir.spike_coding.stats.

    with coded(model, k=3.0, coding="ternary") as probe:
        logits = model(tokens)
    probe.layers()  # per projection: spikes_per_channel, silent_share, ..., effective_acs
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from snc.ir import spike_coding as sc


class Probe:
    """Per projection: its coding statistics (snc.ir.spike_coding.Tally) and its shape."""

    def __init__(self, coding: str, k: float, max_count: int | None) -> None:
        self.coding, self.k, self.max_count = coding, k, max_count
        self.acc: dict[str, tuple[sc.Tally, int, int]] = {}

    def add(self, name: str, c: np.ndarray, n_in: int, n_out: int, clipped: float) -> None:
        tally = self.acc.setdefault(name, (sc.Tally(), n_in, n_out))[0]
        tally.add(c, self.coding, sc.steps(c, self.coding), int(round(clipped * c.size)))

    def layers(self) -> dict[str, dict]:
        return {name: {"coding": self.coding, "k": self.k, **tally.stats(n_out), "n_in": n_in, "n_out": n_out}
                for name, (tally, n_in, n_out) in self.acc.items()}

    def totals(self) -> dict:
        tallies = [t for t, _, _ in self.acc.values()]
        n = max(1, sum(t.entries for t in tallies))
        events = sum(t.events for t in tallies)
        cells = sum(t.entries * max(1, t.steps) for t in tallies)
        return {
            "coding": self.coding, "k": self.k, "steps": max((t.steps for t in tallies), default=0),
            "spikes_per_channel": events / n, "silent_share": sum(t.silent for t in tallies) / n,
            "share_counts_le_7": sum(t.le7 for t in tallies) / n, "sparsity": 1.0 - events / max(1, cells),
            "sparsity_step3": 1.0 - sum(t.win3 for t in tallies) / (3 * n),
            "effective_acs": sum(t.events * n_out for t, _, n_out in self.acc.values()),
            "effective_macs": sum(t.entries * n_out for t, _, n_out in self.acc.values()),
        }


@contextmanager
def _hooks(projections: dict[str, torch.nn.Linear], make, *, pre: bool):
    """``make(name, layer)`` registered on every projection (before or after its forward), removed on exit."""
    handles = [(layer.register_forward_pre_hook if pre else layer.register_forward_hook)(make(name, layer))
               for name, layer in projections.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def coded(model: torch.nn.Module, *, k: float = 3.0, coding: str = "ternary", max_count: int | None = None,
          projections: dict[str, torch.nn.Linear] | None = None, w8_group: int | None = None):
    """Within the block, every projection (default: every ``nn.Linear`` of ``model``) sees
    V_th x round(x / V_th) with V_th = mean(|x|) / k per token (snc.ir.spike_coding); with
    ``w8_group`` its weights are also W8ASpike's (symmetric INT8 per output row and group of
    input channels), restored afterwards."""
    if projections is None:
        projections = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    probe = Probe(coding, k, max_count)
    saved = {}
    if w8_group is not None:
        with torch.no_grad():
            for name, layer in projections.items():
                saved[name] = layer.weight.detach().clone()
                w8 = sc.w8_dequantized(layer.weight.detach().double().numpy(), w8_group)
                layer.weight.copy_(torch.from_numpy(w8).to(layer.weight.dtype))

    def hook_for(name: str, layer: torch.nn.Linear):
        def hook(module, args):
            (x,) = args
            xn = x.detach().to(torch.float64).numpy()
            vth = sc.adaptive_threshold(xn, k)
            c, clipped = sc.counts(xn, vth, max_count)
            probe.add(name, c, layer.in_features, layer.out_features, clipped)
            return (torch.from_numpy(vth * c).to(x.dtype),)
        return hook

    try:
        with _hooks(projections, hook_for, pre=True):
            yield probe
    finally:
        with torch.no_grad():
            for name, weight in saved.items():
                projections[name].weight.copy_(weight)


@contextmanager
def simulated(model: torch.nn.Module, *, k: float = 3.0, coding: str = "ternary",
              projections: dict[str, torch.nn.Linear] | None = None):
    """Within the block, every projection runs event by event in snc's spiking simulator: its
    input is coded (as ``coded``), the spike trains drive the projection lowered to a spiking
    graph (snc.lm.lower), and its output is V_th x T x the readout (plus the layer's bias). The
    rest of the model (norms, attention products, gates) stays dense, in torch. Yields a dict
    projection -> {"events": input events, "synops": synaptic operations the simulator counted,
    "tokens": tokens}."""
    from snc.backends.sim import simulate

    from . import lower

    if projections is None:
        projections = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    graphs = {name: lower.projection_graph(layer.weight.detach().numpy().astype(np.float32), coding, name="proj")
              for name, layer in projections.items()}
    counts: dict[str, dict] = {name: {"events": 0, "synops": 0, "tokens": 0} for name in projections}

    def hook_for(name: str, layer: torch.nn.Linear):
        def hook(module, args, output):
            (x,) = args
            lead = x.shape[:-1]
            xn = x.detach().to(torch.float64).reshape(-1, x.shape[-1]).numpy()
            trains, vth, t = lower.code(xn, k, coding)
            r = simulate(graphs[name], lower.spike_input(trains, coding), timesteps=t)
            y = lower.value(r.outputs["out"], vth, t)
            if layer.bias is not None:
                y = y + layer.bias.detach().double().numpy()
            c = counts[name]
            c["events"] += int(np.count_nonzero(trains))
            c["synops"] += int(r.populations["x"].synops.sum())
            c["tokens"] += len(xn)
            return torch.from_numpy(y.reshape(*lead, -1)).to(output.dtype)
        return hook

    with _hooks(projections, hook_for, pre=False):
        yield counts
