"""Language models through the compiler: trace, spike-code and simulate the example byte-level LM
(examples/spiking_lm; the trained weights in examples/spiking_lm/out/lm.pt when present, else
the same architecture at random), and time each step against the PyTorch model's own forward
pass on the same tokens, measured in the same run.

    .venv/bin/python benchmarks/lm_sim.py [--sequences 32] [--coding ternary] [--k 3]

Prints seconds and the ratio to the baseline (PyTorch float forward; and the pseudo-spiking
hooks of snc.lm.pseudo, the other way to evaluate a coded model).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from examples.spiking_lm.model import ByteLM, Config, split, stdlib_bytes, windows  # noqa: E402
from snc.backends.sim.sequence import simulate_sequence  # noqa: E402
from snc.frontends.torch import from_torch  # noqa: E402
from snc.lm.pseudo import coded  # noqa: E402
from snc.pipeline import compile as compile_graph  # noqa: E402


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sequences", type=int, default=32)
    ap.add_argument("--coding", default="ternary")
    ap.add_argument("--k", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    cfg = Config()
    model = ByteLM(cfg)
    weights = ROOT / "examples" / "spiking_lm" / "out" / "lm.pt"
    trained = weights.exists()
    if trained:
        model.load_state_dict(torch.load(weights, weights_only=True))
    model.eval()
    text, held = split(stdlib_bytes(2_000_000))
    x, y = windows(held, cfg.context, args.sequences)
    calib, _ = windows(text, cfg.context, 16, np.random.default_rng(1))
    tokens = x.size
    print(f"example LM ({'trained' if trained else 'random weights'}), {args.sequences} sequences x {cfg.context} tokens, "
          f"{args.coding} coding, k = {args.k:g}")

    def torch_float():
        with torch.no_grad():
            model(torch.from_numpy(x))

    def torch_pseudo():
        with torch.no_grad(), coded(model, k=args.k, coding=args.coding, projections=model.projections()):
            model(torch.from_numpy(x))

    rows = [("PyTorch float forward (baseline)", best(torch_float, args.repeat))]
    rows.append(("PyTorch pseudo-spiking hooks", best(torch_pseudo, args.repeat)))
    t0 = time.perf_counter()
    graph = from_torch(model, x[:1])
    rows.append(("trace (torch.export -> IR)", time.perf_counter() - t0))
    t0 = time.perf_counter()
    cg = compile_graph(graph, calib, coding=args.coding, k=args.k)
    rows.append(("spike-code pass (16 calibration windows)", time.perf_counter() - t0))
    rows.append(("snc simulate, values (pseudo-spiking)", best(lambda: simulate_sequence(cg, x, labels=y, mode="values"), args.repeat)))
    result = {}
    rows.append(("snc simulate, events (step by step)",
                 best(lambda: result.setdefault("r", simulate_sequence(cg, x, labels=y, mode="events")), args.repeat)))
    base = rows[0][1]
    width = max(len(r[0]) for r in rows)
    for name, sec in rows:
        print(f"{name.ljust(width)}  {sec:8.3f} s  {sec / base:8.1f}x  {1e6 * sec / tokens:9.1f} us/token")
    r = result["r"]
    steps = max(p.steps for p in r.projections.values() if p.coder)
    print(f"events per token {r.events / r.tokens:,.0f}; most steps of a coder {steps}; perplexity {r.perplexity:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
