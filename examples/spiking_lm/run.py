"""Train the byte-level hybrid LM (model.py) on the standard library's source, then measure what
SpikingBrain's spike coding of every projection costs in quality and what it saves.

    python examples/spiking_lm/run.py [--steps 1500] [--out examples/spiking_lm/out] [--docs docs]

Writes ``lm.pt`` (state dict), ``results.json`` and the compiler's inputs (``lm.pt2``, token
``.npy`` files: see ``through_snc``) to --out and, with --docs, the k-sweep plot
``spiking_lm_k_sweep.png`` and the tables ``spiking_lm_results.md``. Perplexity is on the
held-back 10 % of the text; coding is pseudo-spiking (snc.lm.pseudo: V_th x count, exactly
what the spike trains reconstruct). Energy per token is compute only at 45 nm (horowitz45):
coded projections as INT8 additions (one per event and output; INT8 MACs for graded events),
the dense compute (attention products, the LM head) as FP16 MACs, against the same model with
every projection as FP16 MACs; and the coded projections alone on Loihi 2 (loihi2 profile: a
synaptic operation per event and output, graded payloads at the same cost, one neuron update
per output).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from examples.spiking_lm.model import ByteLM, Config, split, stdlib_bytes, train, windows  # noqa: E402
from snc.lm import energy  # noqa: E402
from snc.lm.pseudo import coded  # noqa: E402

KS = (2.0, 2.5, 3.0, 3.5, 4.0)
CODINGS = ("ternary", "bitwise", "bitwise_ternary", "graded")


def perplexity(model: ByteLM, x: np.ndarray, y: np.ndarray, batch: int = 16) -> float:
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            logits = model(torch.from_numpy(x[i:i + batch]))
            total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), torch.from_numpy(y[i:i + batch]).reshape(-1),
                                           reduction="sum"))
            count += y[i:i + batch].size
    return math.exp(total / count)


def dense_compute_macs_per_token(model: ByteLM, x: np.ndarray) -> dict:
    """MACs per token, counted by torch's FlopCounterMode: all, the projections' (coded), and the
    rest (attention products, LM head): the dense compute that stays MACs."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.from_numpy(x))
    tokens = x.size
    total = counter.get_total_flops() / 2 / tokens
    proj = sum(m.in_features * m.out_features for m in model.projections().values())
    return {"total": total, "projections": float(proj), "dense": total - proj}


def evaluate(model: ByteLM, x: np.ndarray, y: np.ndarray, macs: dict, ops: energy.OpEnergy) -> dict:
    out = {"float": {"perplexity": perplexity(model, x, y),
                     "energy_j": macs["total"] * ops.mac["fp16"], "effective_macs": macs["total"]}}
    for coding in CODINGS:
        for k in KS:
            with coded(model, k=k, coding=coding, projections=model.projections()) as probe:
                ppl = perplexity(model, x, y)
            layers = probe.layers()
            tokens = next(iter(layers.values()))["tokens"]
            chip = 0.0
            for row in layers.values():
                row["energy_j"] = row["effective_acs"] / row["tokens"] * energy.per_event(coding, ops)
                row["loihi2_energy_j"] = energy.on_chip(row["events"] / row["tokens"], row["n_out"])["energy_j"]
                chip += row["loihi2_energy_j"]
            tot = probe.totals()
            tot["effective_acs"] /= tokens
            tot["effective_macs"] = macs["dense"]  # per token: what stays MACs
            tot["energy_j"] = tot["effective_acs"] * energy.per_event(coding, ops) + macs["dense"] * ops.mac["fp16"]
            tot["loihi2_projections_energy_j"] = chip  # the coded projections on Loihi 2 (synops and neuron updates)
            out[f"{coding}@{k}"] = {"perplexity": ppl, "totals": tot, "layers": layers}
    with coded(model, k=3.0, coding="ternary", projections=model.projections(), w8_group=128):
        out["w8aspike@3.0"] = {"perplexity": perplexity(model, x, y)}  # INT8 weights per row and 128 channels
    return out


def through_snc(model: ByteLM, x: np.ndarray, y: np.ndarray, calib: np.ndarray, out: Path, coding: str = "ternary",
                k: float = 3.0) -> dict:
    """The same model through the compiler, as a user runs it: torch.export -> lm.pt2, the
    ``spike-code`` pass (steps calibrated on training windows), the event simulator and the
    per-token estimate. Writes lm.pt2, calib.npy, tokens.npy and next.npy (the CLI's inputs)."""
    from snc.backends.sim.sequence import simulate_sequence
    from snc.frontends.torch import load_pt2
    from snc.lm.estimate import estimate_sequence
    from snc.pipeline import compile as compile_graph

    torch.export.save(torch.export.export(model, (torch.from_numpy(x[:1]),)), out / "lm.pt2")
    for name, arr in (("calib", calib), ("tokens", x), ("next", y)):
        np.save(out / f"{name}.npy", arr)
    graph = load_pt2(out / "lm.pt2")
    plain = simulate_sequence(graph, x, labels=y)
    res = {"uncoded_perplexity": plain.perplexity}
    for head in ("coded", "analog"):  # SpikingBrain codes every projection; pseudo-spiking above leaves the tied head
        exclude = () if head == "coded" else (graph.outputs[0],)
        cg = compile_graph(graph, calib, coding=coding, k=k, exclude=exclude)
        doc = estimate_sequence(cg, x, labels=y)
        res[f"head_{head}"] = {"perplexity": doc["quality"]["perplexity"], "accuracy": doc["quality"]["accuracy"],
                               "totals": doc["totals"], "baseline": doc["baseline"], "footprint": doc["footprint"],
                               "layers": {r["name"]: r for r in doc["layers"]}}
    o = os.path.relpath(out)
    res["commands"] = [f"snc compile {o}/lm.pt2 -o {o}/lm.snir --coding {coding} --k {k:g} --calib {o}/calib.npy",
                       f"snc simulate {o}/lm.snir --data {o}/tokens.npy --labels {o}/next.npy",
                       f"snc estimate {o}/lm.snir --data {o}/tokens.npy --labels {o}/next.npy --per-token"]
    return res


def write_docs(results: dict, docs: Path, meta: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = results["float"]["perplexity"]
    lines = [f"Model: {meta['params']:,} parameters ({meta['config']}), {meta['steps']} training steps "
             f"({meta['train_seconds']:.0f} s on this machine's CPU); held-back text: {meta['eval_tokens']:,} bytes.",
             "", f"Float perplexity: **{base:.3f}** (bits per byte {math.log2(base):.3f}).", "",
             "### k sweep (every projection coded; cf. the report's Table 11)", "",
             "| coding | k | perplexity | increase | spikes / channel | silent | counts <= 7 | sparsity | sparsity (step 3) | steps | energy / token, 45 nm (J) | projections on Loihi 2 (J) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for coding in CODINGS:
        for k in KS:
            r = results[f"{coding}@{k}"]
            t = r["totals"]
            lines.append(f"| {coding} | {k} | {r['perplexity']:.3f} | {100 * (r['perplexity'] / base - 1):+.2f} % | "
                         f"{t['spikes_per_channel']:.3f} | {100 * t['silent_share']:.1f} % | {100 * t['share_counts_le_7']:.1f} % | "
                         f"{100 * t['sparsity']:.1f} % | {100 * t['sparsity_step3']:.1f} % | {t['steps']} | {t['energy_j']:.3g} | "
                         f"{t['loihi2_projections_energy_j']:.3g} |")
    w8 = results["w8aspike@3.0"]["perplexity"]
    lines += ["", f"Float model, every projection as FP16 MACs: {results['float']['energy_j']:.3g} J per token.", "",
              f"W8ASpike (k = 3 coding and symmetric INT8 weights per output row and group of 128 input channels): "
              f"perplexity {w8:.3f} ({100 * (w8 / base - 1):+.2f} %).", ""]
    for coding in CODINGS:
        r = results[f"{coding}@3.0"]
        lines += [f"### Per layer, {coding} coding, k = 3", "",
                  "| projection | spikes / channel | silent | counts <= 7 | sparsity | sparsity (step 3) | steps | energy / token (J) |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, row in r["layers"].items():
            lines.append(f"| {name} | {row['spikes_per_channel']:.3f} | {100 * row['silent_share']:.1f} % | "
                         f"{100 * row['share_counts_le_7']:.1f} % | {100 * row['sparsity']:.1f} % | "
                         f"{100 * row['sparsity_step3']:.1f} % | {row['steps']} | {row['energy_j']:.3g} |")
        lines.append("")
    if "snc" in results:
        r = results["snc"]
        lines += ["### Through the compiler (ternary, k = 3)", "",
                  "The model traced by torch.export into snc's IR, its projections spike-coded by the `spike-code` pass "
                  "(steps calibrated on training windows) and run event by event by snc's sequence simulator:", "",
                  "```", *r["commands"], "```", "",
                  f"Uncoded IR perplexity {r['uncoded_perplexity']:.3f} (PyTorch: {base:.3f}).", "",
                  "| LM head | perplexity | increase | spikes / channel | sparsity | sparsity (step 3) | steps | ACs / token | "
                  "MACs / token (all) | J / token, Loihi 2 | J / token, 45 nm | J / token, FP16 ANN |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for head in ("analog", "coded"):
            h = r[f"head_{head}"]
            t = h["totals"]
            lines.append(f"| {head} | {h['perplexity']:.3f} | {100 * (h['perplexity'] / base - 1):+.2f} % | "
                         f"{t['spikes_per_channel']:.3f} | {100 * t['sparsity']:.1f} % | {100 * t['sparsity_step3']:.1f} % | "
                         f"{t['steps']} | {t['effective_acs']:,.0f} | {t['effective_macs']:,.0f} | "
                         f"{t['energy_by_hw']['loihi2']:.3g} | {t['energy_by_hw']['horowitz45']:.3g} | {h['baseline']['energy_j']:.3g} |")
        fp = r["head_coded"]["footprint"]["loihi2"]
        lines += ["", f"Dense compute (norms, attention, activations, products, residuals, the coders' thresholds and "
                      f"V_th rescales) is charged at the 45 nm FP16 MAC in every column: "
                      f"{r['head_coded']['totals']['dense_compute_macs']:,.0f} operations per token. "
                      f"The projection weights take {fp['cores']} Loihi 2 cores ({fp['chips']} chip).", ""]
    (docs / "spiking_lm_results.md").write_text("\n".join(lines) + "\n")

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for i, (coding, marker) in enumerate(zip(CODINGS, "os^d")):
        rows = [results[f"{coding}@{k}"] for k in KS]
        color = f"C{i}"
        axes[0].plot(KS, [100 * (r["perplexity"] / base - 1) for r in rows], marker=marker, color=color, label=coding)
        axes[1].plot(KS, [100 * r["totals"]["sparsity"] for r in rows], marker=marker, color=color, label=f"{coding}")
        axes[1].plot(KS, [100 * r["totals"]["sparsity_step3"] for r in rows], marker=marker, color=color, linestyle="--",
                     label=f"{coding} (step 3)")
        axes[2].plot(KS, [r["totals"]["spikes_per_channel"] for r in rows], marker=marker, color=color, label=coding)
    axes[0].set(xlabel="k", ylabel="perplexity increase (%)", title="Quality cost (codings are lossless: one curve)")
    axes[1].set(xlabel="k", ylabel="sparsity (%)", title="Sparsity")
    axes[2].set(xlabel="k", ylabel="spikes per channel", title="Activity")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(docs / "spiking_lm_k_sweep.png", dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--text-bytes", type=int, default=2_000_000)
    ap.add_argument("--eval-windows", type=int, default=64)
    ap.add_argument("--out", default=str(HERE / "out"))
    ap.add_argument("--docs", default=None)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    args = ap.parse_args(argv)
    cfg = Config(hidden=args.hidden, layers=args.layers, mlp=2 * args.hidden)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    text, held = split(stdlib_bytes(args.text_bytes))
    weights = out / "lm.pt"
    t0 = time.perf_counter()
    if weights.exists() and not args.retrain:
        model = ByteLM(cfg)
        model.load_state_dict(torch.load(weights, weights_only=True))  # our own file; tensors only
        model.eval()
        meta = json.loads((out / "results.json").read_text())["meta"] if (out / "results.json").exists() else {}
        train_seconds = meta.get("train_seconds", 0.0)
    else:
        def progress(step, steps, loss):
            if step % 100 == 0 or step == steps:
                print(f"  step {step}/{steps}  loss {loss:.3f}  ({time.perf_counter() - t0:.0f} s)", flush=True)

        model = train(cfg, text, steps=args.steps, progress=progress)
        train_seconds = time.perf_counter() - t0
        torch.save(model.state_dict(), weights)
    x, y = windows(held, cfg.context, args.eval_windows)
    macs = dense_compute_macs_per_token(model, x[:4])
    results = evaluate(model, x, y, macs, energy.OpEnergy.from_profile("horowitz45"))
    calib, _ = windows(text, cfg.context, 16, np.random.default_rng(1))
    results["snc"] = through_snc(model, x, y, calib, out)
    meta = {"config": cfg.as_dict(), "steps": args.steps, "train_seconds": train_seconds,
            "params": sum(p.numel() for p in model.parameters()), "eval_tokens": int(y.size), "macs_per_token": macs}
    (out / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    base = results["float"]["perplexity"]
    print(f"float perplexity {base:.3f}; W8ASpike at k = 3: {results['w8aspike@3.0']['perplexity']:.3f}")
    for head in ("analog", "coded"):
        h = results["snc"][f"head_{head}"]
        print(f"through snc (ternary, k = 3, LM head {head}): perplexity {h['perplexity']:.3f}, "
              f"{h['totals']['energy_by_hw']['loihi2']:.3g} J/token on Loihi 2, {h['totals']['energy_by_hw']['horowitz45']:.3g} "
              f"J/token at 45 nm, FP16 ANN {h['baseline']['energy_j']:.3g} J/token")
    for key, r in results.items():
        if "totals" in r and key != "snc":
            t = r["totals"]
            print(f"{key:14s} perplexity {r['perplexity']:.3f} ({100 * (r['perplexity'] / base - 1):+.2f} %)  "
                  f"spikes/channel {t['spikes_per_channel']:.3f}  sparsity {100 * t['sparsity']:.1f} %  "
                  f"step-3 {100 * t['sparsity_step3']:.1f} %  energy/token {t['energy_j']:.3g} J")
    if args.docs:
        write_docs(results, Path(args.docs), meta)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
