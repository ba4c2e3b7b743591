"""How long the default ``snc compile`` takes on the networks users bring, pass by pass.

Networks (examples/zoo.py), exported to ONNX with torch.onnx and compiled from the file:

* CIFAR ResNet-20: 3 stages x 3 basic blocks, 21 Conv + 21 BatchNorm, 9 residual Adds, global
  average pool, Linear (0.27 M parameters; random weights with non-trivial BN statistics),
  calibrated on random 32x32x3 images in [0, 1];
* the ONNX Model Zoo mnist-8 shape: Conv(1->8, k5)-ReLU-MaxPool2-Conv(8->16, k5)-ReLU-MaxPool3-
  MatMul 256->10, calibrated on MNIST test images when ../shared/corpus is present, else on
  random 28x28 images.

Each network is compiled with the default pipeline (fold-bn .. map onto the default chip, no
--verify) with 200 and with 1000 calibration samples (``--samples``), torch with 2 threads. The
script prints the per-pass seconds, the simulations the compile ran, and the 1000/200 time ratio
(linear growth would be 5x), and checks the targets of issue 9 (ResNet-20 <= 10 s, MNIST CNN
<= 3 s with 200 samples). Wall-clock targets live here, never in unit tests.

    python benchmarks/compile_time.py [--samples 200,1000] [--repeats 1] [--out docs/compile_time.md]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import snc  # noqa: E402
from examples import zoo  # noqa: E402

TARGETS = {"resnet20": 10.0, "mnist_cnn2": 3.0}  # seconds with 200 calibration samples


def _mnist(n: int) -> tuple[np.ndarray, str]:
    corpus = ROOT.parent / "shared" / "corpus" / "datasets" / "mnist" / "t10k-images-idx3-ubyte.gz"
    if corpus.exists():
        from tests.corpus_data import read_idx

        x = read_idx(corpus)[:n].astype(np.float32)[:, None] / 255.0
        return x, "MNIST test images"
    return np.random.default_rng(0).random((n, 1, 28, 28), dtype=np.float32), "random images (no corpus)"


def networks(n_max: int, folder: Path) -> dict[str, tuple[Path, np.ndarray, str]]:
    rng = np.random.default_rng(0)
    cifar = rng.random((n_max, 3, 32, 32), dtype=np.float32)
    mnist, source = _mnist(n_max)
    return {
        "resnet20": (zoo.export_onnx(zoo.resnet20(), cifar, folder / "resnet20.onnx"), cifar, "random 32x32x3 images"),
        "mnist_cnn2": (zoo.export_onnx(zoo.mnist_cnn2(), mnist, folder / "mnist_cnn2.onnx"), mnist, source),
    }


def compile_once(path: Path, calib: np.ndarray) -> tuple[float, snc.Graph]:
    t0 = time.perf_counter()
    graph = snc.load_model(path)
    snn = snc.compile(graph, calib, verify=False)
    return time.perf_counter() - t0, snn


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", default="200,1000", help="calibration set sizes")
    ap.add_argument("--repeats", type=int, default=1, help="best of this many compiles")
    ap.add_argument("--networks", default="resnet20,mnist_cnn2")
    ap.add_argument("--out", default=None, help="also write the tables to this markdown file")
    args = ap.parse_args()
    torch.set_num_threads(2)
    sizes = [int(s) for s in args.samples.split(",")]
    wanted = args.networks.split(",")
    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        nets = networks(max(sizes), Path(tmp))
        # Warm-up: imports and first-call costs are not the compile's.
        compile_once(nets["mnist_cnn2"][0], nets["mnist_cnn2"][1][:16])
        for name in wanted:
            path, data, source = nets[name]
            totals = {}
            for n in sizes:
                runs = [compile_once(path, data[:n]) for _ in range(args.repeats)]
                seconds, snn = min(runs, key=lambda r: r[0])
                totals[n] = seconds
                say(f"### {name}, {n} calibration samples ({source}): {seconds:.2f} s")
                say("")
                say("| pass | seconds | simulations | first change |")
                say("|---|---|---|---|")
                for t in snn.meta["pass_times"]:
                    first = (t["changes"][0] if t["changes"] else "no change").replace("|", "/")
                    say(f"| {t['name']} | {t['seconds']:.2f} | {t['simulations']} | {first[:90]} |")
                sims = snn.meta["compile"]["simulations"]
                say("")
                say(f"simulations of the calibration set: {len(sims)}; analog passes: {snn.meta['compile']['analysis_passes']}; "
                    f"load + compile {seconds:.2f} s")
                say("")
            if 200 in totals and name in TARGETS:
                met = totals[200] <= TARGETS[name]
                ok &= met
                say(f"**{name}: {totals[200]:.2f} s with 200 samples, target <= {TARGETS[name]:g} s: {'met' if met else 'NOT met'}**")
            if len(sizes) > 1:
                a, b = sizes[0], sizes[-1]
                say(f"{name}: {b} vs {a} samples: {totals[b] / totals[a]:.2f}x the time for {b / a:.0f}x the data "
                    f"({'at most linear' if totals[b] / totals[a] <= b / a else 'super-linear'})")
            say("")
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
