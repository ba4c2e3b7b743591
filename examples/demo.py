"""`make demo`: the main job end to end on scikit-learn's bundled digits.

1. train (or reuse) an MLP and a CNN (BatchNorm, ReLU, MaxPool) - examples/digits.py;
2. compile them with snc: the MLP from its ONNX export, the CNN from its torch.export .pt2;
3. simulate the spiking networks on the test set for T = 8 ... 256 steps and print ANN vs SNN
   accuracy (and plot it), then spikes, sparsity and synaptic operations per layer at T = 64;
4. estimate energy and latency of the CNN on Loihi and Loihi 2 (`snc estimate`), with plots.

    python examples/demo.py [--out demo-out] [--retrain]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from examples import digits  # noqa: E402

STEPS = (8, 16, 32, 64, 128, 256)


def log(msg: str) -> None:
    print(msg, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE.parent / "demo-out")
    ap.add_argument("--models", type=Path, default=digits.DEFAULT_OUT)
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args()

    import snc
    from snc.backends import analog
    from snc.backends.sim import simulate
    from snc.report import format_simulation
    from snc.report import pct, table

    t0 = time.perf_counter()
    log("== snc demo: scikit-learn digits (8x8), fixed 75/25 split ==")
    log("[1/5] models")
    digits.prepare(args.models, args.retrain, log=lambda m: log(f"      {m}"))
    data = digits.load_data()
    x_cal, x_test, y_test = data["x_train"], data["x_test"], data["y_test"]
    sources = {"mlp": args.models / "digits_mlp.onnx", "cnn": args.models / "digits_cnn.pt2"}

    log("[2/5] compile (calibration: the 1347 training images)")
    compiled = {}
    ann_acc = {}
    args.out.mkdir(parents=True, exist_ok=True)
    for name, path in sources.items():
        graph = snc.load_model(path)
        ann_acc[name] = float(np.mean(analog.predict(graph, x_test) == y_test))
        snn = snc.compile(graph, calib=x_cal, timesteps=64)
        artifact = args.out / f"digits_{name}.snir"
        snc.save(snn, artifact)
        compiled[name] = snn
        neurons = sum(int(np.prod(n.shape)) for n in snn.nodes.values() if n.kind == "IF")
        log(f"      {path.name} -> {artifact.relative_to(args.out.parent) if args.out.parent in artifact.parents else artifact}: "
            f"{neurons} IF neurons")
        for entry in snn.meta["report"]:
            if entry["pass"] in ("fold-bn", "convert") and ("max pool" in entry["message"] or "folded" in entry["message"]):
                log(f"        [{entry['pass']}] {entry['message']}")

    log("[3/5] accuracy on the 450 test images, ANN vs SNN (float32, layer-synchronous)")
    curves: dict[str, list[float]] = {}
    for name, snn in compiled.items():
        curves[name] = []
        for t in STEPS:
            r = simulate(snn, x_test, labels=y_test, timesteps=t, batch_size=150)
            curves[name].append(r.accuracy)
    rows = [[name, pct(ann_acc[name])] + [pct(a) for a in curves[name]] for name in compiled]
    log(table(rows, ["model", "ANN"] + [f"T={t}" for t in STEPS], align="l" + "r" * (len(STEPS) + 1)))
    for name in compiled:
        best64 = max(curves[name][: STEPS.index(64) + 1])
        log(f"      {name}: best SNN at T<=64 is {pct(best64)} ({100 * (best64 - ann_acc[name]):+.2f} points vs ANN); "
            f"T=256 vs T=64: {100 * (curves[name][-1] - curves[name][STEPS.index(64)]):+.2f} points")
    _plot(curves, ann_acc, args.out / "accuracy_vs_T.png")
    log(f"      plot: {args.out / 'accuracy_vs_T.png'}")

    log("[4/5] activity per layer at T=64")
    for name, snn in compiled.items():
        r = simulate(snn, x_test, labels=y_test, timesteps=64, batch_size=150)
        log(f"--- {name} ---")
        log(format_simulation(r))
    log("[5/5] energy and latency on neuromorphic chips (cycle-approximate model, per inference)")
    from snc.estimate import estimate, format_table
    from snc.hw import load_profile
    from snc.plots import estimate_plots

    profiles = [load_profile("loihi"), load_profile("loihi2")]
    est = estimate(compiled["cnn"], x_test, labels=y_test, hw=profiles, timesteps=64, calibration=x_cal, batch_size=150)
    log("--- cnn ---")
    log(format_table(est.doc))
    for path in estimate_plots(est, profiles, args.out / "plots"):
        log(f"      plot: {path}")
    log("")
    log("The same from the command line:")
    log(f"  snc compile {sources['cnn']} --calib {args.models / 'x_train.npy'} -o cnn.snir")
    log(f"  snc simulate cnn.snir --data {args.models / 'x_test.npy'} --labels {args.models / 'y_test.npy'} --timesteps 64")
    log(f"  snc estimate cnn.snir --data {args.models / 'x_test.npy'} --labels {args.models / 'y_test.npy'} --hw loihi --hw loihi2 --plot plots")
    log(f"demo finished in {time.perf_counter() - t0:.0f} s")


def _plot(curves, ann_acc, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, accs in curves.items():
        line, = ax.plot(STEPS, [100 * a for a in accs], marker="o", label=f"{name} SNN")
        ax.axhline(100 * ann_acc[name], color=line.get_color(), linestyle="--", linewidth=1, label=f"{name} ANN")
    ax.set_xscale("log", base=2)
    ax.set_xticks(STEPS, [str(s) for s in STEPS])
    ax.set_xlabel("time steps T")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("digits: spiking network accuracy vs simulation length")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    main()
