"""Magnitude pruning sweep on the digits CNN: accuracy and Loihi energy against synapse sparsity.

The CNN of examples/digits.py (trained with ``examples.digits.prepare``; reused from
``--models`` when present) is compiled with the conversion passes and ``quantize`` (8-bit
weights, layer scaling). For each sparsity S = 0, 10, ..., 90 % the ``prune`` pass zeroes the
smallest S of every weighted layer's weights (``prune_sparsity=S``, ``prune_scope="layer"``,
activity pruning off). Per S it records

* the test accuracy of the fixed-point network on the 450 test images (T = 64, Loihi arithmetic),
* the measured fraction of zero weights over the model's Dense/Conv2d layers (fixed mantissas),
  and the non-zero synapses the chip stores (the composed projections, max-pool construction
  included),
* the energy per inference on loihi from ``snc.estimate.estimate`` on the first 30 test images
  (the cycle model: one float32 layer-synchronous run, mapped with the ``map`` pass).

Writes ``docs/prune_sweep.png`` (accuracy and energy against sparsity) and
``docs/prune_sweep.md`` (the table and the command that produced it), and prints the table.

    python benchmarks/prune_sweep.py [--models DIR] [--out docs] [--timesteps 64] [--energy-samples 30]
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # examples/ is not an installed package

import snc  # noqa: E402
from examples import digits  # noqa: E402
from snc.backends.sim import build_plan, simulate  # noqa: E402
from snc.estimate import estimate  # noqa: E402
from snc.passes import CONVERSION, PassContext, get  # noqa: E402
from snc.ir.annotations import is_maxpool_construct  # noqa: E402

SPARSITIES = tuple(range(0, 100, 10))  # percent


def models_dir(requested: Path | None) -> Path:
    """A folder holding digits_cnn.onnx: the one asked for, examples/models, or a cache."""
    for candidate in (requested, ROOT / "examples" / "models"):
        if candidate is not None and (candidate / "digits_cnn.onnx").exists():
            return candidate
    out = requested or Path(tempfile.gettempdir()) / "snc_digits_models"
    print(f"digits models in {out} (trained there unless already present) ...", flush=True)
    digits.prepare(out, log=lambda m: print("  " + m, flush=True))
    return out


def model_weights(g: snc.ir.Graph) -> list[np.ndarray]:
    """Integer weights of the model's own weighted layers (not the max-pool construction)."""
    return [n.fixed.weight for n in g.nodes.values()
            if n.kind in ("Dense", "Conv2d") and not is_maxpool_construct(n)]


def chip_synapses(g: snc.ir.Graph) -> int:
    return sum(p.synapses for pop in build_plan(g).populations for p in pop.projections)


def sweep(models: Path, timesteps: int, energy_samples: int) -> tuple[list[dict], dict]:
    data = digits.load_data()
    t0 = time.perf_counter()
    quantized = snc.compile(models / "digits_cnn.onnx", data["x_train"], passes=list(CONVERSION) + ["quantize"],
                            timesteps=timesteps, weight_bits=8, scaling="layer", labels=data["y_train"])
    info = {"compile_s": time.perf_counter() - t0}
    rows = []
    for s in SPARSITIES:
        t0 = time.perf_counter()
        ctx = PassContext(timesteps=timesteps, options={"prune_sparsity": s / 100, "prune_scope": "layer", "prune_activity": False})
        pruned = get("prune")(quantized, ctx)
        w = model_weights(pruned)
        zeros = sum(int(np.count_nonzero(m == 0)) for m in w) / sum(m.size for m in w)
        result = simulate(pruned, data["x_test"], labels=data["y_test"], timesteps=timesteps, arithmetic="fixed", batch_size=150)
        cost = estimate(pruned, data["x_test"][:energy_samples], hw=["loihi"], timesteps=timesteps,
                        calibration=data["x_train"][:64]).doc["totals"]
        rows.append({
            "sparsity": s,
            "zero_weights": zeros,
            "synapses": chip_synapses(pruned),
            "accuracy": result.accuracy,
            "overflow": sum(c["u_wraps"] + c["v_saturations"] for c in result.overflow.values()),
            "energy_j": cost["energy_j"],
            "dynamic_j": cost["dynamic_energy_j"],
            "synops": cost["synops"],
            "cores": cost["cores"],
            "seconds": time.perf_counter() - t0,
        })
        r = rows[-1]
        print(f"S = {s:2d} %: accuracy {100 * r['accuracy']:.2f} %, zero weights {100 * zeros:.1f} %, "
              f"energy {1e6 * r['energy_j']:.2f} uJ ({r['seconds']:.1f} s)", flush=True)
    return rows, info


def table(rows: list[dict]) -> str:
    head = ("| S requested | zero weights (measured) | non-zero synapses on chip | test accuracy (fixed point) "
            "| energy / inference (loihi) | of which dynamic | synaptic ops / inference | cores |")
    lines = [head, "|" + "---:|" * 8]
    for r in rows:
        lines.append(f"| {r['sparsity']} % | {100 * r['zero_weights']:.1f} % | {r['synapses']:,} | {100 * r['accuracy']:.2f} % "
                     f"| {1e6 * r['energy_j']:.2f} uJ | {1e6 * r['dynamic_j']:.3f} uJ | {r['synops']:,.0f} | {r['cores']} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path, timesteps: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = [r["sparsity"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    ax.plot(s, [100 * r["accuracy"] for r in rows], "o-", color="tab:blue", label="test accuracy (fixed point)")
    ax.set_xlabel("magnitude pruning: requested synapse sparsity S per layer (%)")
    ax.set_ylabel("test accuracy (%)", color="tab:blue")
    ax.tick_params(axis="y", labelcolor="tab:blue")
    ax.set_xticks(s)
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(s, [1e6 * r["energy_j"] for r in rows], "s--", color="tab:red", label="energy / inference")
    ax2.plot(s, [1e6 * r["dynamic_j"] for r in rows], "^:", color="tab:orange", label="of which dynamic")
    ax2.set_ylabel("energy per inference on loihi (uJ)", color="tab:red")
    ax2.tick_params(axis="y", labelcolor="tab:red")
    ax2.set_ylim(bottom=0)
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [l.get_label() for l in lines], loc="center left", fontsize=8)
    ax.set_title(f"digits CNN, 8-bit weights, T = {timesteps}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=Path, default=None, help="folder with digits_cnn.onnx (trained there if absent)")
    ap.add_argument("--out", type=Path, default=ROOT / "docs")
    ap.add_argument("--timesteps", type=int, default=64)
    ap.add_argument("--energy-samples", type=int, default=30)
    args = ap.parse_args()
    start = time.perf_counter()
    models = models_dir(args.models)
    rows, info = sweep(models, args.timesteps, args.energy_samples)
    args.out.mkdir(parents=True, exist_ok=True)
    plot(rows, args.out / "prune_sweep.png", args.timesteps)
    command = "python benchmarks/prune_sweep.py" + "".join(f" {a}" for a in map(shlex.quote, sys.argv[1:]))
    text = table(rows)
    md = [
        "# Magnitude pruning sweep: digits CNN on Loihi",
        "",
        "Produced by",
        "",
        "```",
        command,
        "```",
        "",
        f"The digits CNN (examples/digits.py: conv 16 - pool - conv 32 - pool - 64 - 10) compiled with the conversion "
        f"passes and `quantize` (8-bit weights, one scale per layer), then `prune` with `prune_sparsity` = S, "
        f"`prune_scope=layer`, activity pruning off. Accuracy: the 450 test images in fixed point (Loihi arithmetic), "
        f"T = {args.timesteps}. Zero weights: fraction of zero mantissas over the model's Dense/Conv2d layers (at S = 0 "
        f"these are the weights that quantise to zero). Synapses: non-zero entries of the composed projections "
        f"(what the chip stores, max-pool construction included). Energy: `snc.estimate.estimate` on loihi, "
        f"first {args.energy_samples} test images (one float32 layer-synchronous run, mapped by the `map` pass); "
        f"dynamic = synaptic operations, neuron updates and messages, the rest is static power x latency.",
        "",
        text,
        "",
        "![accuracy and energy against sparsity](prune_sweep.png)",
        "",
        f"Static energy (static power x chips x latency, the latency set by the busiest core in each step) is "
        f"{100 * (1 - rows[0]['dynamic_j'] / rows[0]['energy_j']):.0f} % of the total at S = 0; it follows the latency, "
        f"which is why the total is not monotonic in S while the dynamic part falls steadily "
        f"({1e6 * rows[0]['dynamic_j']:.1f} -> {1e6 * rows[-1]['dynamic_j']:.1f} uJ).",
        "",
        f"Overflow events the simulator reported on the test set (24-bit current wraps + voltage saturations): "
        f"{', '.join(str(r['overflow']) for r in rows)} for S = {', '.join(str(r['sparsity']) for r in rows)} %.",
        f"Total run time {time.perf_counter() - start:.0f} s (compile {info['compile_s']:.0f} s).",
        "",
    ]
    (args.out / "prune_sweep.md").write_text("\n".join(md))
    print()
    print(text)
    print(f"\nwrote {args.out / 'prune_sweep.png'} and {args.out / 'prune_sweep.md'}")


if __name__ == "__main__":
    main()
