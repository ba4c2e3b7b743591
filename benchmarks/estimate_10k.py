"""`snc estimate` of an MNIST CNN over the whole 10,000-image MNIST test set at T = 32 (issue 13:
<= 60 s on the 2-core machine, with a progress bar).

The CNN is the NxTF MNIST network (benchmarks/nxtf.py: conv 5x5/2 16 - conv 3x3 32 - conv 3x3/2
64 - conv 4x4 10, an on-chip input layer), trained for one epoch on the first 8,000 test images
(this is a speed benchmark; the accuracy printed is over all 10,000 and says so). It is
compiled with the default pipeline (calibration: 500 images) and then, in the same run:

* baseline: `snc.backends.sim.simulate` over the 10,000 images (the simulation alone), and
* `snc.estimate.estimate(..., hw=["loihi"])`: the same simulation plus the mapping and the cycle
  model's per-core counters (NeuroBench's counts come from the simulation itself), with a
  progress bar on stderr.

It prints both times, the estimate's samples per second, estimate / simulate and the target
check. Without ../shared it uses scikit-learn's digits upsampled to 28x28, repeated to 10,000.

    python benchmarks/estimate_10k.py [--samples 10000] [--timesteps 32]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import snc  # noqa: E402
import nxtf  # noqa: E402

TARGET_S = 60.0


def data(n: int) -> tuple[np.ndarray, np.ndarray, str]:
    if nxtf.MNIST_IMAGES.exists() and nxtf.MNIST_LABELS.exists():
        from tests.corpus_data import read_mnist

        x, y = read_mnist(nxtf.MNIST_IMAGES, nxtf.MNIST_LABELS)
        return x[:n], y[:n], f"MNIST t10k, first {min(n, len(x)):,} images"
    x_tr, y_tr, x_te, y_te, desc = nxtf.load_mnist(False)
    x, y = np.concatenate([x_tr, x_te]), np.concatenate([y_tr, y_te])
    reps = -(-n // len(x))
    return np.tile(x, (reps, 1, 1, 1))[:n], np.tile(y, reps)[:n], desc + f", repeated to {n:,}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--timesteps", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(2)
    from snc.backends.sim import simulate
    from snc.cli_common import _progress_bar
    from snc.estimate import estimate

    x, y, desc = data(args.samples)
    torch.manual_seed(0)
    model = nxtf.mnist_cnn()
    t0 = time.perf_counter()
    nxtf.train_mnist(model, x[:8000], y[:8000], 1)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    graph = snc.from_torch(model, x[:2])
    snn = snc.compile(graph, calib=x[:500], timesteps=args.timesteps, verify=False)
    compile_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    base = simulate(snn, x, labels=y, timesteps=args.timesteps)
    simulate_s = time.perf_counter() - t0

    bar, update = _progress_bar(len(x), "estimate")
    t0 = time.perf_counter()
    with bar:
        est = estimate(snn, x, labels=y, hw=["loihi"], timesteps=args.timesteps, calibration=x[:500], progress=update)
    estimate_s = time.perf_counter() - t0
    t = est.doc["totals"]
    print(f"data: {desc}; T = {args.timesteps}; torch threads 2; trained 1 epoch in {train_s:.1f} s; compile {compile_s:.1f} s")
    print(f"accuracy over all {len(x):,} images (8,000 of them seen in training): SNN {est.doc['accuracy']:.4f} "
          f"(simulate alone: {base.accuracy:.4f})")
    print(f"loihi: {t['cores_used']} cores, {t['energy_j']:.3e} J and {t['latency_s']:.3e} s per inference")
    print("| step | seconds | samples/s |")
    print("|---|---|---|")
    print(f"| simulate (baseline, same run) | {simulate_s:.1f} | {len(x) / simulate_s:,.0f} |")
    print(f"| estimate (simulate + mapping + cycle-model counters) | {estimate_s:.1f} | {len(x) / estimate_s:,.0f} |")
    print(f"estimate / simulate = {estimate_s / simulate_s:.2f}; target <= {TARGET_S:.0f} s: "
          f"{'met' if estimate_s <= TARGET_S else 'NOT met'} ({estimate_s / TARGET_S:.2f} of the budget)")


if __name__ == "__main__":
    main()
