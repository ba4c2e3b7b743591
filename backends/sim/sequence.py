"""The event simulator of language models (token-sequence graphs, snc.ir.sequence).

Dense-compute nodes run as they are defined (snc.backends.sequence_ops). A ``SpikeCode`` node
turns each token's activations into integer counts and spike trains; every ``Projection`` it
feeds then runs step by step on the events: at step t the events s_t (0/1, -1/0/1, or graded
payloads) reach the weights, the accumulator takes w_t (W s_t), and after the last step the
projection's value is V_th x the accumulator (+ bias). This equals W (V_th c) exactly on the
quantisation grid (snc.ir.spike_coding); what it counts is what a chip would do: events per
channel and step, one accumulation per event and output.

Per projection it records the coding statistics over all tokens (the ``Probe`` keys of
snc.lm.pseudo): events, entries, silent entries, entries with |c| <= 7, events in a 3-step
window, clipped entries and the steps used; per dense-compute node its operations.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from snc.errors import InvalidData
from snc.ir import Graph
from snc.ir import spike_coding as sc
from snc.ir.sequence import Projection, SpikeCode, Tokens, is_sequence_model

from .. import dense_ops


class ProjectionStats(sc.Tally):
    """Activity of one projection over the simulated tokens: the coding statistics of its input
    (snc.ir.spike_coding.Tally) and its shape. ``coder`` None: an analog input (MACs)."""

    def __init__(self, name: str, coder: str | None, coding: str | None, k: float | None, n_in: int, n_out: int) -> None:
        super().__init__()
        self.name, self.coder, self.coding, self.k, self.n_in, self.n_out = name, coder, coding, k, int(n_in), int(n_out)

    def as_dict(self) -> dict:
        d = self.stats(self.n_out)
        if self.coder is None:  # analog: no coding statistics, MACs only
            d.update({key: None for key in ("spikes_per_channel", "silent_share", "share_counts_le_7", "sparsity",
                                             "sparsity_step3", "clipped_share")}, effective_acs=0)
        return {"name": self.name, "coder": self.coder, "coding": self.coding, "k": self.k, "n_in": self.n_in,
                "n_out": self.n_out, **d}


@dataclass
class SequenceResult:
    """What ``simulate_sequence`` returns. ``logits`` (N, L, vocab) float32; ``loss`` the mean
    next-token cross-entropy in nats and ``perplexity`` exp(loss) when labels were given;
    ``accuracy`` next-token top-1."""

    logits: np.ndarray
    tokens: int
    projections: dict[str, ProjectionStats]
    compute: dict[str, dict]  # dense-compute node -> {"kind", "ops"} over all tokens
    loss: float | None = None
    perplexity: float | None = None
    accuracy: float | None = None
    mode: str = "events"
    notes: list[str] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(p.events for p in self.projections.values())


def simulate_sequence(graph: Graph, tokens: np.ndarray, *, labels: np.ndarray | None = None, batch_size: int = 16,
                      mode: str = "events", progress: Callable[[int, int], None] | None = None) -> SequenceResult:
    """Run a language model graph on token ids (N, L).

    mode: ``events`` - coded projections run step by step on their spike trains (above);
          ``values`` - they take the value V_th x count at once (the pseudo-spiking computation
          SpikingBrain trains and evaluates with; same counts, no steps), in the same float64
          arithmetic, so that the two agree to float32 rounding. (The dense evaluator,
          snc.backends.analog, computes coded projections in float32: a count that lies on a
          rounding boundary can then differ by one, a difference of V_th in one entry.)
    labels: next-token ids (N, L) for loss, perplexity and accuracy.
    """
    if not is_sequence_model(graph):
        raise InvalidData("simulate_sequence runs language models (a Tokens input)")
    if mode not in ("events", "values"):
        raise InvalidData(f"unknown mode {mode!r} (use 'events' or 'values')")
    (inp,) = graph.input_names
    tokens = graph.nodes[inp].conform(tokens, inp)
    if labels is not None:
        labels = graph.nodes[inp].conform(labels, "labels").astype(np.int64)
        if labels.shape != tokens.shape:
            raise InvalidData(f"labels {labels.shape} and tokens {tokens.shape} differ in shape", node="labels")
    shapes = graph.infer_shapes()
    order = graph.topological_order()
    out_name = graph.outputs[0]
    stats: dict[str, ProjectionStats] = {}
    compute: dict[str, dict] = {}
    for name in order:
        node = graph.nodes[name]
        if isinstance(node, Projection):
            (src,) = graph.inputs_of(name)
            coder = graph.nodes[src] if isinstance(graph.nodes[src], SpikeCode) else None
            stats[name] = ProjectionStats(name, src if coder else None, coder.coding if coder else None,
                                          float(coder.k) if coder else None, *node.weight.shape[::-1])
        elif hasattr(node, "ops_per_token"):
            ins = [shapes[s] for s in graph.inputs_of(name)]
            compute[name] = {"kind": node.kind, "ops_per_token": int(node.ops_per_token(ins)), "ops": 0}
    n = len(tokens)
    logits = []
    nll, hits = 0.0, 0
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            ids = tokens[start:start + batch_size]
            out = _run_batch(graph, order, ids, stats, mode)
            logits.append(out)
            n_tok = ids.size
            for c in compute.values():
                c["ops"] += c["ops_per_token"] * n_tok
            if labels is not None:
                y = torch.from_numpy(labels[start:start + batch_size]).reshape(-1)
                lt = torch.from_numpy(out).reshape(-1, out.shape[-1]).double()
                nll += float(torch.nn.functional.cross_entropy(lt, y, reduction="sum"))
                hits += int((lt.argmax(-1) == y).sum())
            if progress is not None:
                progress(min(n, start + batch_size), n)
    logits_arr = np.concatenate(logits) if logits else np.zeros((0,) + shapes[out_name], np.float32)
    result = SequenceResult(logits=logits_arr, tokens=int(tokens.size), projections=stats, compute=compute, mode=mode)
    if labels is not None and tokens.size:
        result.loss = nll / tokens.size
        result.perplexity = float(np.exp(result.loss))
        result.accuracy = hits / tokens.size
    clipped = [p.name for p in stats.values() if p.clipped]
    if clipped:
        share = sum(p.clipped for p in stats.values()) / max(1, sum(p.entries for p in stats.values() if p.coder))
        result.notes.append(f"{100 * share:.3g} % of coded entries exceeded their coder's calibrated steps and were clipped "
                            f"(in {len(clipped)} projection(s))")
    return result


def _run_batch(graph: Graph, order: list[str], ids: np.ndarray, stats: dict[str, ProjectionStats], mode: str) -> np.ndarray:
    values: dict[str, torch.Tensor] = {}
    codes: dict[str, tuple[np.ndarray, np.ndarray, int, int]] = {}  # coder -> counts, V_th, steps, clipped
    trains: dict[str, _Trains] = {}  # coder -> its events, built once for all the projections it feeds
    for name in order:
        node = graph.nodes[name]
        srcs = graph.inputs_of(name)
        if isinstance(node, Tokens):
            values[name] = torch.from_numpy(ids)
        elif isinstance(node, SpikeCode):
            x = values[srcs[0]].numpy()
            c, vth, clipped = node.code(x, name)
            t = int(node.steps) if node.steps else max(1, sc.steps(c, node.coding))
            codes[name] = (c, vth, t, int(round(clipped * c.size)))
            values[name] = torch.from_numpy((vth * c).astype(np.float32))
        elif isinstance(node, Projection) and srcs[0] in codes:
            c, vth, t, clipped = codes[srcs[0]]
            stats[name].add(c, graph.nodes[srcs[0]].coding, t, clipped)
            if mode == "values":
                values[name] = _valued_projection(node, c, vth)
            else:
                coder = graph.nodes[srcs[0]]
                if srcs[0] not in trains:
                    trains[srcs[0]] = _Trains(c, coder.coding, t, coder.payload_bits)
                values[name] = _coded_projection(node, c, vth, t, coder.coding, trains=trains[srcs[0]])
        else:
            values[name] = dense_ops.apply(node, [values[s] for s in srcs])
            if isinstance(node, Projection):
                p = stats[name]
                p.tokens += int(np.prod(values[srcs[0]].shape[:-1]))
                p.entries += int(values[srcs[0]].numel())
    return values[graph.outputs[0]].numpy().astype(np.float32, copy=True)


def _finish(node: Projection, acc: torch.Tensor, vth: np.ndarray) -> torch.Tensor:
    y = torch.from_numpy(np.asarray(vth, np.float64)) * acc
    if node.bias is not None:
        y = y + torch.from_numpy(np.asarray(node.bias, np.float64))
    return y.float()


def _valued_projection(node: Projection, c: np.ndarray, vth: np.ndarray) -> torch.Tensor:
    """V_th x (W c) + b at once, in float64 (products of float32 weights and integer counts, and
    their sums, are exact there: the same number as the step-by-step accumulation)."""
    weight = torch.from_numpy(np.asarray(node.weight, np.float64))
    return _finish(node, torch.from_numpy(c.astype(np.float64)) @ weight.T, vth)


class _Trains:
    """A coder's events for one batch, step by step, shared by the projections it feeds: for
    each step with events, the tokens (rows) and channels (columns) that have any, and the events
    on them (int8, or int64 graded payloads). Binary and ternary trains end early for most
    tokens (a token is silent from step max|c|), so each step touches only the tokens and
    channels still active."""

    def __init__(self, c: np.ndarray, coding: str, t: int, payload_bits: int) -> None:
        sc.expand(c[:1], coding, t, payload_bits)  # validates the coding, steps and payloads (cheaply)
        if coding == "graded":
            limit = 2 ** (int(payload_bits) - 1) - 1
            if np.abs(c).max(initial=0) > limit:
                sc.expand(c, coding, t, payload_bits)  # raises, naming the count
        self.shape = c.shape
        c2 = c.reshape(-1, c.shape[-1])
        self.weights = sc.weights(coding, t)
        self.blocks: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
        span = np.abs(c2).max(axis=1) if coding in ("binary", "ternary") else None
        for step in range(t):
            rows = np.flatnonzero(span > step) if span is not None else np.arange(len(c2))
            if not rows.size:
                break
            s = sc.step_events(c2[rows], coding, t, step)
            keep = s.any(axis=1)
            rows, s = rows[keep], s[keep]
            if not rows.size:
                continue
            cols = np.flatnonzero(s.any(axis=0))
            self.blocks.append((step, rows, cols, s[:, cols]))


def _coded_projection(node: Projection, c: np.ndarray, vth: np.ndarray, t: int, coding: str,
                      payload_bits: int = 24, trains: _Trains | None = None) -> torch.Tensor:
    """V_th x sum_t w_t (W s_t) + b, step by step over the events (float64 accumulation: exact
    for the integer part while sums stay below 2**53 / max|W|)."""
    trains = trains or _Trains(c, coding, t, payload_bits)
    weight = np.asarray(node.weight, np.float64)
    acc = np.zeros((int(np.prod(c.shape[:-1])), weight.shape[0]), np.float64)
    for step, rows, cols, s in trains.blocks:
        acc[rows] += float(trains.weights[step]) * (s.astype(np.float64) @ weight[:, cols].T)
    return _finish(node, torch.from_numpy(acc.reshape(c.shape[:-1] + (weight.shape[0],))), vth)
