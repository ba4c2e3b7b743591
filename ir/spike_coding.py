"""SpikingBrain-style spike coding of the activations that enter a static-weight projection.

An activation vector x (one token: the hidden dimension is the last axis) becomes integer
counts with an adaptive threshold, and the counts become spike trains that a synaptic
projection sums event by event:

* threshold: V_th = mean(|x|) / k over the last axis, per token, clamped to [lo, hi]
  (SpikingBrain: k = 3, [1e-5, 1e4]);
* counts: c = round(x / V_th) (half to even, as torch.round), optionally clipped to
  [-max_count, max_count] (the clipped share is reported);
* expansion into T steps of events s_t, with per-step weights w_t:

  =========  ===================================  ==========================  ====================
  coding     s_t                                  w_t                         T
  =========  ===================================  ==========================  ====================
  binary     1 while t < c  (c >= 0 only)         1                           max c
  ternary    sign(c) while t < |c|                1                           max |c|
  bitwise    bit T-1-t of c in two's complement   -2**(T-1) for t = 0 (the    bits of the widest c
             (MSB first; values 0/1)              sign bit), else 2**(T-1-t)  (sign bit included)
  graded     c itself, one event if c != 0        1                           1
  bitwise_   sign(c) x bit T-1-t of |c|           2**(T-1-t)                  bits of max |c|
  ternary    (MSB first; values -1/0/1)
  =========  ===================================  ==========================  ====================

  (``bitwise_ternary`` is the report's "bitwise-ternary expansion": one signed event per set bit
  of |c|, SpikingBrain's 1.13 spikes per channel; two's complement ``bitwise`` spends many more
  events on small negative counts, -1 being all ones)

  so that sum_t w_t s_t = c exactly, and a projection computes V_th * sum_t w_t (W s_t) =
  W (V_th c). A graded event carries c as its payload (Loihi 2: 8 to 24 bits, signed here).

Everything is integer and exact; ``reconstruct`` checks the identity. The steps a coding
needs are the most any channel of the tensor needs (all channels share a time base).
"""
from __future__ import annotations

import numpy as np

from snc.errors import InvalidData

CODINGS = ("binary", "ternary", "bitwise", "graded", "bitwise_ternary")
PAYLOAD_BITS = (8, 24)  # Loihi 2 graded spikes: the payloads configured in practice (up to 32 possible)


def adaptive_threshold(x: np.ndarray, k: float = 3.0, lo: float = 1e-5, hi: float = 1e4) -> np.ndarray:
    """V_th = mean(|x|) / k over the last axis (kept as an axis of length 1), clamped to [lo, hi]."""
    if k <= 0:
        raise InvalidData(f"k must be > 0, got {k}")
    x = np.asarray(x, dtype=np.float64)
    return np.clip(np.abs(x).mean(axis=-1, keepdims=True) / float(k), lo, hi)


def counts(x: np.ndarray, vth: np.ndarray, max_count: int | None = None) -> tuple[np.ndarray, float]:
    """Integer counts round(x / V_th) (int64) and the share of entries clipped to
    [-max_count, max_count] (0 without a maximum)."""
    c = np.rint(np.asarray(x, np.float64) / vth).astype(np.int64)
    if max_count is None:
        return c, 0.0
    if max_count < 1:
        raise InvalidData(f"max_count must be >= 1, got {max_count}")
    clipped = np.count_nonzero(np.abs(c) > max_count)
    return np.clip(c, -max_count, max_count), clipped / max(1, c.size)


def _bits(c: np.ndarray) -> int:
    """Width of the two's complement form of every entry (sign bit included), at least 1."""
    if c.size == 0:
        return 1
    hi, lo = int(c.max()), int(c.min())
    need = max(hi.bit_length() + 1 if hi > 0 else 1, (-lo - 1).bit_length() + 1 if lo < 0 else 1)
    return need


def steps(c: np.ndarray, coding: str) -> int:
    """Time steps the coding needs for the counts ``c`` (all channels share them)."""
    c = np.asarray(c, np.int64)
    _check(c, coding)
    if coding == "binary":
        return int(c.max(initial=0))
    if coding == "ternary":
        return int(np.abs(c).max(initial=0))
    if coding == "bitwise":
        return _bits(c)
    if coding == "bitwise_ternary":
        return int(np.abs(c).max(initial=0)).bit_length()
    return 1


def max_count_for(coding: str, t_steps: int, payload_bits: int = 24) -> int:
    """The largest |count| that ``t_steps`` steps of the coding carry in both signs (the inverse
    of ``steps``): T for binary and ternary, 2**(T-1) - 1 for two's complement bitwise,
    2**T - 1 for bitwise_ternary, the payload's range for graded."""
    if coding not in CODINGS:
        raise InvalidData(f"unknown spike coding {coding!r} (use one of {', '.join(CODINGS)})")
    t = int(t_steps)
    if t < 1:
        raise InvalidData(f"a coding needs at least 1 step, got {t}")
    if coding in ("binary", "ternary"):
        return t
    if coding == "bitwise":
        return max(1, 2 ** (t - 1) - 1)
    if coding == "bitwise_ternary":
        return 2 ** t - 1
    return 2 ** (int(payload_bits) - 1) - 1


def weights(coding: str, t_steps: int) -> np.ndarray:
    """The per-step weights w_t (int64): sum_t w_t s_t = c."""
    if coding in ("bitwise", "bitwise_ternary"):
        w = 2 ** np.arange(t_steps - 1, -1, -1, dtype=np.int64)
        if t_steps and coding == "bitwise":
            w[0] = -w[0]
        return w
    return np.ones(t_steps, np.int64)


def expand(c: np.ndarray, coding: str, t_steps: int | None = None, payload_bits: int = 24) -> np.ndarray:
    """The spike trains of the counts ``c``: an array (T, *c.shape), int8 (0/1 or -1/0/1) or,
    graded, int64 payloads. ``t_steps`` may give more steps than needed (extra steps are silent,
    bitwise sign-extends); fewer is an error."""
    c = np.asarray(c, np.int64)
    _check(c, coding)
    need = steps(c, coding)
    t_steps = need if t_steps is None else int(t_steps)
    if t_steps < need:
        raise InvalidData(f"{coding} coding of these counts needs {need} steps, {t_steps} given")
    if coding == "graded":
        limit = 2 ** (int(payload_bits) - 1) - 1
        if np.abs(c).max(initial=0) > limit:
            raise InvalidData(f"a count of {int(np.abs(c).max())} does not fit a signed {payload_bits}-bit graded payload")
        out = np.zeros((t_steps,) + c.shape, np.int64)
        if t_steps:
            out[0] = c
        return out
    t = np.arange(t_steps).reshape((-1,) + (1,) * c.ndim)
    return _events(c, coding, t_steps, t)


def step_events(c: np.ndarray, coding: str, t_steps: int, t: int) -> np.ndarray:
    """Step ``t`` of ``expand(c, coding, t_steps)`` alone (same dtype and values), for a
    simulator that walks the steps; the counts must already fit ``t_steps`` (``expand`` checks)."""
    c = np.asarray(c, np.int64)
    if coding == "graded":
        return c.copy() if t == 0 else np.zeros_like(c)
    return _events(c, coding, int(t_steps), int(t))


def _events(c: np.ndarray, coding: str, t_steps: int, t) -> np.ndarray:
    """The events of step(s) t (an int, or an array broadcasting against c) of a coding other than graded."""
    if coding == "binary":
        return (t < c).astype(np.int8)
    if coding == "ternary":
        return (np.sign(c) * (t < np.abs(c))).astype(np.int8)
    if coding == "bitwise_ternary":
        return (np.sign(c) * ((np.abs(c) >> (t_steps - 1 - t)) & 1)).astype(np.int8)
    # bitwise: two's complement in t_steps bits, MSB first
    unsigned = np.where(c < 0, c + (1 << t_steps), c)
    return ((unsigned >> (t_steps - 1 - t)) & 1).astype(np.int8)


def decode(trains: np.ndarray, coding: str) -> np.ndarray:
    """sum_t w_t s_t: the counts back (int64)."""
    trains = np.asarray(trains, np.int64)
    w = weights(coding, trains.shape[0]).reshape((-1,) + (1,) * (trains.ndim - 1))
    return (w * trains).sum(axis=0)


def project(weight: np.ndarray, trains: np.ndarray, vth: np.ndarray, coding: str) -> np.ndarray:
    """What a coded projection computes, event by event: y = V_th * sum_t w_t (W s_t), for
    trains (T, ..., n_in), weight (n_out, n_in), V_th (..., 1). Exact in float64 while the
    integer sums stay below 2**53."""
    weight = np.asarray(weight, np.float64)
    w = weights(coding, trains.shape[0])
    acc = np.zeros(trains.shape[1:-1] + (weight.shape[0],), np.float64)
    for t in range(trains.shape[0]):
        s = trains[t]
        if np.any(s):
            acc += float(w[t]) * (s.astype(np.float64) @ weight.T)
    return np.asarray(vth, np.float64) * acc


def _check(c: np.ndarray, coding: str) -> None:
    if coding not in CODINGS:
        raise InvalidData(f"unknown spike coding {coding!r} (use one of {', '.join(CODINGS)})")
    if coding == "binary" and c.size and int(c.min()) < 0:
        raise InvalidData("binary spike coding takes unsigned activations only; this input has negative "
                          "counts (use ternary, bitwise or graded coding)")


def events_per_entry(c: np.ndarray, coding: str, t_steps: int | None = None) -> np.ndarray:
    """Non-zero events of each entry's train (int64), without expanding: |c| for binary and
    ternary, the set bits of the two's complement form in T bits for bitwise (of |c| for
    bitwise_ternary), one per non-zero count for graded."""
    c = np.asarray(c, np.int64)
    _check(c, coding)
    if coding in ("binary", "ternary"):
        return np.abs(c)
    if coding == "graded":
        return (c != 0).astype(np.int64)
    t_steps = steps(c, coding) if t_steps is None else int(t_steps)
    if coding == "bitwise_ternary":
        unsigned = np.abs(c).astype(np.uint64)
    else:
        unsigned = np.where(c < 0, c + (1 << t_steps), c).astype(np.uint64)
    return np.bitwise_count(unsigned).astype(np.int64) if hasattr(np, "bitwise_count") else \
        np.array([bin(int(u)).count("1") for u in unsigned.reshape(-1)], np.int64).reshape(c.shape)


def stats(c: np.ndarray, coding: str, t_steps: int | None = None, window: int = 3) -> dict:
    """The coding's activity over the counts ``c`` (every entry is one channel of one token):

    * ``spikes_per_channel``: events / entries (SpikingBrain's "average spikes": 1.13 there);
    * ``silent_share``: entries whose count is 0 (no event at all);
    * ``share_counts_le_7``: entries with |c| <= 7;
    * ``sparsity``: zeros / (entries x T) of the expanded tensor, T = ``steps``;
    * ``sparsity_step3``: the report's "step size 3" convention as snc reads it (the report does
      not give the rule): each entry's train in a ``window`` of 3 steps, unused steps filled with
      zeros, an entry with more than 3 events counting 3: 1 - sum min(events, 3) / (3 entries).
    """
    c = np.asarray(c, np.int64)
    t_steps = steps(c, coding) if t_steps is None else int(t_steps)
    ev = events_per_entry(c, coding, t_steps)
    n = max(1, c.size)
    total = int(ev.sum())
    return {
        "coding": coding,
        "steps": t_steps,
        "spikes_per_channel": total / n,
        "silent_share": float(np.count_nonzero(c == 0)) / n,
        "share_counts_le_7": float(np.count_nonzero(np.abs(c) <= 7)) / n,
        "sparsity": 1.0 - total / (n * t_steps) if t_steps else 1.0,
        "sparsity_step3": 1.0 - float(np.minimum(ev, window).sum()) / (n * window),
        "events": total,
        "entries": int(c.size),
    }


def w8_weights(weight: np.ndarray, group: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """W8ASpike's weights: symmetric INT8 with one scale per output row and per group of
    ``group`` input channels (the last group may be shorter). Returns (int8 weights (n_out, n_in),
    scales (n_out, groups), float64). A group of zeros gets scale 1 (its weights stay 0)."""
    weight = np.asarray(weight, np.float64)
    if weight.ndim != 2 or group < 1:
        raise InvalidData(f"W8 weights need a (n_out, n_in) matrix and a group >= 1, got {weight.shape} and {group}")
    n_out, n_in = weight.shape
    groups = -(-n_in // group)
    padded = np.zeros((n_out, groups * group))
    padded[:, :n_in] = weight
    blocks = padded.reshape(n_out, groups, group)
    peak = np.abs(blocks).max(axis=2)
    scales = np.where(peak > 0, peak / 127.0, 1.0)
    q = np.clip(np.rint(blocks / scales[:, :, None]), -127, 127).astype(np.int8)
    return q.reshape(n_out, -1)[:, :n_in], scales


def w8_dequantized(weight: np.ndarray, group: int = 128) -> np.ndarray:
    """The float weights a W8ASpike layer computes with: int8 x its group's scale."""
    q, scales = w8_weights(weight, group)
    n_in = q.shape[1]
    return q.astype(np.float64) * np.repeat(scales, group, axis=1)[:, :n_in]


class Tally:
    """The coding statistics of one projection's input, accumulated batch by batch (the
    definitions of ``stats``): events, entries (tokens x channels), tokens, silent entries,
    entries with |c| <= 7, events in a 3-step window, clipped entries, and the most steps used."""

    def __init__(self) -> None:
        self.events = self.entries = self.tokens = self.silent = self.le7 = self.win3 = self.clipped = self.steps = 0

    def add(self, c: np.ndarray, coding: str, t_steps: int, clipped: int = 0) -> None:
        c = np.asarray(c, np.int64)
        ev = events_per_entry(c, coding, t_steps)
        self.events += int(ev.sum())
        self.entries += int(c.size)
        self.tokens += int(c.size // max(1, c.shape[-1])) if c.ndim else 1
        self.silent += int(np.count_nonzero(c == 0))
        self.le7 += int(np.count_nonzero(np.abs(c) <= 7))
        self.win3 += int(np.minimum(ev, 3).sum())
        self.clipped += int(clipped)
        self.steps = max(self.steps, int(t_steps))

    def stats(self, n_out: int) -> dict:
        """``stats``'s keys over everything added, and the projection's ACs and dense MACs."""
        n, t = max(1, self.entries), max(1, self.steps)
        return {"steps": self.steps, "spikes_per_channel": self.events / n, "silent_share": self.silent / n,
                "share_counts_le_7": self.le7 / n, "sparsity": 1.0 - self.events / (n * t),
                "sparsity_step3": 1.0 - self.win3 / (3 * n), "clipped_share": self.clipped / n,
                "effective_acs": self.events * int(n_out), "effective_macs": self.entries * int(n_out),
                "tokens": self.tokens, "events": self.events, "entries": self.entries}
