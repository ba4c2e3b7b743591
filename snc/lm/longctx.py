"""The long-context cost model: softmax against sliding-window and linear (gated linear)
attention, from 1 k to 4 M tokens.

For a decoder of ``layers`` blocks (hidden d, MLP width f, h query heads and h_kv key/value heads
of size d_h = d / h, vocabulary V), each block a token mixer (``softmax``: causal full
attention; ``swa``: causal sliding-window attention of window W; ``linear``: gated linear
attention with a d_h x d_h state per head) and a SwiGLU MLP, the multiply-accumulates are, for
n tokens of prefill (an efficient causal implementation: no masked work):

    projections per token and block   P = d (2 h d_h + 2 h_kv d_h) + 3 d f   (+ d h d_h: linear's gate)
    softmax mixing                    2 h d_h sum_{i=1..n} i        = h d_h n (n + 1)
    sliding-window mixing             2 h d_h sum_{i=1..n} min(i, W)
    linear mixing                     2 h d_h^2 n                   (state update k v^T and read-out q S)
    LM head                           d V, for the last token only (time to first token)

and one decode step at context n costs P + 2 h d_h n (softmax), P + 2 h d_h min(n, W) (swa),
P + 2 h d_h^2 (linear), plus d V. The state a block keeps after n tokens: 2 n h_kv d_h values
(softmax KV cache), 2 min(n, W) h_kv d_h (swa) and h d_h^2 (linear), ``bytes_per_value`` each.

Time to first token assumes compute-bound prefill: 2 MACs / (peak FLOP/s x utilisation) on one
device (defaults: an H100's 989 TFLOP/s dense BF16 at 40 %); the ratio of two architectures is
then the ratio of their MACs and does not depend on the device. Energy is compute only:
MACs x the energy of one FP16 MAC at 45 nm (1.5 pJ; Horowitz), labelled so.

What drives the hybrid's advantage: the share of layers whose mixing grows with n (softmax) and,
for the others, the window W and d_h. The n^2 term overtakes the per-token projections when
n (h d_h) ~ P, i.e. at a few tens of thousands of tokens for the 7B configuration.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

MIXERS = ("softmax", "swa", "linear")
H100_BF16_FLOPS = 989e12
FP16_MAC_J = 1.5e-12


@dataclass(frozen=True)
class LMConfig:
    name: str
    layers: int
    hidden: int
    mlp: int
    heads: int
    kv_heads: int
    vocab: int
    mixers: tuple[str, ...]  # one per layer
    window: int = 4096
    bytes_per_value: int = 2
    notes: str = ""

    def __post_init__(self) -> None:
        if len(self.mixers) != self.layers:
            raise ValueError(f"{self.name}: {len(self.mixers)} mixers for {self.layers} layers")
        bad = sorted(set(self.mixers) - set(MIXERS))
        if bad:
            raise ValueError(f"{self.name}: unknown mixers {bad} (use {MIXERS})")
        if self.hidden % self.heads:
            raise ValueError(f"{self.name}: hidden {self.hidden} is not a multiple of heads {self.heads}")

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def with_mixers(self, name: str, mixer: str) -> "LMConfig":
        """The same dimensions with every layer's mixer set to ``mixer`` (a baseline)."""
        return LMConfig(**{**asdict(self), "name": name, "mixers": (mixer,) * self.layers})


def _hybrid(layers: int, odd: str, even: str) -> tuple[str, ...]:
    return tuple(odd if i % 2 else even for i in range(layers))


PRESETS = {
    # SpikingBrain-7B (../shared/reference/ENERGY_AND_METRICS.md §4.2): 28 layers, hidden 3584, MLP
    # 18944, 28 heads / 4 KV heads, SWA (window 4096) at odd layers interleaved with GLA; vocab 152,064.
    "spikingbrain-7b": LMConfig("spikingbrain-7b", 28, 3584, 18944, 28, 4, 152064, _hybrid(28, "swa", "linear"), 4096,
                                notes="SpikingBrain-7B: GLA at even layers, sliding-window attention (4096) at odd layers"),
    # A 370M decoder of the same family (snc's own choice of dimensions, in the size class of the
    # MatMul-free LM Abreu et al. ran on Loihi 2): 24 layers, hidden 1024, MLP 2816, 16 heads.
    "hybrid-370m": LMConfig("hybrid-370m", 24, 1024, 2816, 16, 16, 32000, _hybrid(24, "swa", "linear"), 2048,
                            notes="snc's 370M hybrid: GLA at even layers, sliding-window attention (2048) at odd layers"),
}


def projection_macs(cfg: LMConfig, mixer: str) -> int:
    d, f, h, hkv, dh = cfg.hidden, cfg.mlp, cfg.heads, cfg.kv_heads, cfg.head_dim
    p = d * (2 * h * dh + 2 * hkv * dh) + 3 * d * f
    return p + (d * h * dh if mixer == "linear" else 0)


def mixing_macs_prefill(cfg: LMConfig, mixer: str, n: int) -> int:
    h, dh, w = cfg.heads, cfg.head_dim, cfg.window
    if mixer == "softmax":
        return h * dh * n * (n + 1)
    if mixer == "swa":
        full = min(n, w)
        within = full * (full + 1) // 2 + max(0, n - w) * w  # sum_{i=1..n} min(i, W)
        return 2 * h * dh * within
    return 2 * h * dh * dh * n


def mixing_macs_decode(cfg: LMConfig, mixer: str, n: int) -> int:
    h, dh = cfg.heads, cfg.head_dim
    if mixer == "softmax":
        return 2 * h * dh * n
    if mixer == "swa":
        return 2 * h * dh * min(n, cfg.window)
    return 2 * h * dh * dh


def state_values(cfg: LMConfig, mixer: str, n: int) -> int:
    hkv, dh = cfg.kv_heads, cfg.head_dim
    if mixer == "softmax":
        return 2 * n * hkv * dh
    if mixer == "swa":
        return 2 * min(n, cfg.window) * hkv * dh
    return cfg.heads * dh * dh


@dataclass
class Cost:
    tokens: int
    prefill_macs: int
    decode_macs: int
    state_bytes: int
    ttft_s: float
    prefill_energy_j: float
    breakdown: dict = field(default_factory=dict)


def cost(cfg: LMConfig, n: int, *, flops: float = H100_BF16_FLOPS, utilisation: float = 0.4,
         mac_j: float = FP16_MAC_J) -> Cost:
    """Prefill (time to first token) and one decode step at context ``n`` (see the module docstring)."""
    proj = mix = dec = state = 0
    for m in cfg.mixers:
        p = projection_macs(cfg, m)
        proj += p * n
        mix += mixing_macs_prefill(cfg, m, n)
        dec += p + mixing_macs_decode(cfg, m, n)
        state += state_values(cfg, m, n)
    head = cfg.hidden * cfg.vocab
    prefill = proj + mix + head
    return Cost(tokens=n, prefill_macs=prefill, decode_macs=dec + head, state_bytes=state * cfg.bytes_per_value,
                ttft_s=2.0 * prefill / (flops * utilisation), prefill_energy_j=prefill * mac_j,
                breakdown={"projections": proj, "mixing": mix, "lm_head": head})


LENGTHS = tuple(1024 * 4**i for i in range(7)) + (4 * 1024**2,)  # 1k, 4k, ..., 1M (4**5 k), 4M


def compare(cfg: LMConfig, lengths=LENGTHS, baseline: LMConfig | None = None, **kw) -> list[dict]:
    """Rows for each length: the configuration against its all-softmax baseline."""
    base = baseline or cfg.with_mixers(f"{cfg.name}-softmax", "softmax")
    rows = []
    for n in sorted(set(lengths)):
        a, b = cost(cfg, n, **kw), cost(base, n, **kw)
        rows.append({
            "tokens": n,
            "ttft_s": a.ttft_s, "ttft_s_softmax": b.ttft_s, "ttft_speedup": b.prefill_macs / a.prefill_macs,
            "state_gib": a.state_bytes / 2**30, "state_gib_softmax": b.state_bytes / 2**30,
            "decode_speedup": b.decode_macs / a.decode_macs,
            "prefill_energy_j": a.prefill_energy_j, "prefill_energy_j_softmax": b.prefill_energy_j,
            "mixing_share_softmax": b.breakdown["mixing"] / b.prefill_macs,
        })
    return rows


def _fmt_tokens(n: int) -> str:
    return f"{n // 1024**2}M" if n >= 1024**2 else f"{n // 1024}k"


def table(rows: list[dict]) -> str:
    head = ("| tokens | TTFT (s) | TTFT softmax (s) | TTFT speed-up | decode speed-up | state (GiB) | "
            "state softmax (GiB) | prefill energy (J) | softmax (J) |")
    out = [head, "|" + "---|" * 9]
    for r in rows:
        out.append(f"| {_fmt_tokens(r['tokens'])} | {r['ttft_s']:.3g} | {r['ttft_s_softmax']:.3g} | "
                   f"{r['ttft_speedup']:.1f}x | {r['decode_speedup']:.1f}x | {r['state_gib']:.3g} | "
                   f"{r['state_gib_softmax']:.3g} | {r['prefill_energy_j']:.3g} | {r['prefill_energy_j_softmax']:.3g} |")
    return "\n".join(out)


def plot(results: dict[str, list[dict]], path) -> None:
    """TTFT speed-up and state memory against context length, one line per preset (snc.plots)."""
    from pathlib import Path

    from snc.plots import long_context

    long_context(results, Path(path))
