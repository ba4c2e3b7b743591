"""PNG figures for ``snc estimate --plot DIR`` (matplotlib, no display needed)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

WIDTH, HEIGHT, DPI = 8.0, 4.5, 100  # every figure is 800 x 450 pixels


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    """Write atomically: a temporary file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=str(path.parent))
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=DPI)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        _plt().close(fig)
    return path


def layer_energy(doc: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    hws = list(doc["per_hw"])
    names = [l["name"] for l in doc["per_hw"][hws[0]]["layers"]]
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    x = np.arange(len(names))
    width = 0.8 / len(hws)
    for i, h in enumerate(hws):
        by = {l["name"]: l for l in doc["per_hw"][h]["layers"]}
        ax.bar(x + i * width - 0.4 + width / 2, [by[n]["energy_j"] for n in names], width, label=h)
    ax.set_yscale("log")
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("energy per inference (J)")
    ax.set_title("energy per layer")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def layer_sparsity(doc: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    layers = [l for l in doc["layers"] if l["sparsity"] is not None]
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    ax.bar([l["name"] for l in layers], [100 * l["sparsity"] for l in layers], color="tab:green")
    ax.set_ylim(0, 100)
    ax.set_ylabel("activation sparsity (%)")
    ax.set_title("activation sparsity per layer (1 - spikes / (neurons x steps))")
    ax.tick_params(axis="x", rotation=30, labelsize=8)
    fig.tight_layout()
    return _save(fig, path)


def core_utilisation(graph, profile, path: Path) -> Path:
    """Mesh of every chip used: each core coloured by its neuron utilisation."""
    from snc.hw.mesh import Mesh
    from snc.ir.annotations import all_blocks

    plt = _plt()
    mesh = Mesh.from_profile(profile)
    used: dict[int, float] = {}
    owner: dict[int, str] = {}
    for name, placed in all_blocks(graph).items():
        for b in placed:  # blocks sharing a core add up
            used[b.core] = used.get(b.core, 0.0) + (b.stop - b.start) / profile["neurons_per_core"]
            owner[b.core] = name
    chips = max(used) // mesh.cores_per_chip + 1 if used else 1
    per_side = int(np.ceil(np.sqrt(mesh.cores_per_tile)))
    grid = np.full((mesh.tiles_y * per_side, chips * mesh.tiles_x * per_side), np.nan)
    for core in range(chips * mesh.cores_per_chip):
        chip, gx, ty = (int(v) for v in mesh.coordinates(core))
        slot = core % mesh.cores_per_tile
        r = ty * per_side + slot // per_side
        c = gx * per_side + slot % per_side
        grid[r, c] = 100 * used.get(core, 0.0)
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    im = ax.imshow(grid, cmap="viridis", vmin=0, vmax=100, aspect="auto", interpolation="nearest")
    for k in range(1, chips):
        ax.axvline(k * mesh.tiles_x * per_side - 0.5, color="white", linewidth=2)
    fig.colorbar(im, ax=ax, label="neurons used (% of a core)")
    ax.set_title(f"{profile.name}: {len(used)} cores on {chips} chip(s), {mesh.tiles_x}x{mesh.tiles_y} tiles per chip")
    ax.set_xlabel("east-west (tiles x cores)")
    ax.set_ylabel("north-south")
    fig.tight_layout()
    return _save(fig, path)


def raster(result, sample: int, path: Path) -> Path:
    """Spikes of every population for one sample: time on x, neurons (stacked by layer) on y."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(WIDTH, HEIGHT))
    offset = 0
    ticks, labels = [], []
    for name, st in result.populations.items():
        r = st.rasters.get(sample)
        if r is None or st.kind == "Readout" or st.analog:
            continue
        t, n = np.nonzero(r)
        ax.scatter(t, n + offset, s=1, marker="|")
        ticks.append(offset + st.neurons / 2)
        labels.append(name)
        offset += st.neurons
        ax.axhline(offset, color="grey", linewidth=0.3)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_xlabel("time step")
    ax.set_title(f"spike raster of sample {sample}")
    ax.set_xlim(-0.5, result.timesteps - 0.5)
    ax.set_ylim(0, max(offset, 1))
    fig.tight_layout()
    return _save(fig, path)


def estimate_plots(est, profiles, folder: Path, sample: int = 0) -> list[Path]:
    folder = Path(folder)
    out = [layer_energy(est.doc, folder / "layer_energy.png"), layer_sparsity(est.doc, folder / "layer_sparsity.png")]
    for prof in profiles:
        out.append(core_utilisation(est.mapped[prof.name], prof, folder / f"core_utilisation_{prof.name}.png"))
    out.append(raster(est.result, sample, folder / "raster.png"))
    return out


def long_context(results: dict[str, list[dict]], path: Path) -> Path:
    """snc.lm.longctx: TTFT speed-up over all-softmax and state memory against context length."""
    plt = _plt()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(WIDTH, HEIGHT))
    for k, (name, rows) in enumerate(results.items()):
        n = [r["tokens"] for r in rows]
        ax1.plot(n, [r["ttft_speedup"] for r in rows], marker="o", color=f"C{k}", label=name)
        ax2.plot(n, [r["state_gib"] for r in rows], marker="o", color=f"C{k}", label=name)
        ax2.plot(n, [r["state_gib_softmax"] for r in rows], linestyle="--", color=f"C{k}", label=f"{name}, all softmax")
    ax1.axhline(26.5, color="grey", linestyle=":", label="SpikingBrain measured at 1M (32 H100s)")
    ax1.set(xscale="log", yscale="log", xlabel="context (tokens)", ylabel="TTFT speed-up (MAC ratio)",
            title="Time to first token vs all-softmax")
    ax2.set(xscale="log", yscale="log", xlabel="context (tokens)", ylabel="state / KV cache (GiB, BF16)",
            title="Memory after the prompt")
    for ax in (ax1, ax2):
        ax.legend(fontsize=6)
        ax.title.set_fontsize(9)
    fig.tight_layout()
    return _save(fig, path)


def per_token(doc: dict[str, Any], path: Path) -> Path:
    """A language model's projections: spikes per channel (bars) and energy per token per
    hardware column (points, right axis, log)."""
    plt = _plt()
    layers = doc["layers"]
    names = [l["name"] for l in layers]
    fig, ax = plt.subplots(figsize=(max(WIDTH, 0.28 * len(names) + 2), HEIGHT))
    x = np.arange(len(names))
    ax.bar(x, [l["spikes_per_channel"] or 0.0 for l in layers], color="tab:green", alpha=0.7, label="spikes per channel")
    ax.set_ylabel("spikes per channel")
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=6)
    ax2 = ax.twinx()
    for h in doc["hw"]:
        ax2.plot(x, [l["energy_by_hw"][h] * 1e12 for l in layers], "o", ms=3, label=f"pJ/token {h}")
    ax2.set_yscale("log")
    ax2.set_ylabel("energy per token (pJ)")
    t = doc["totals"]
    ax.set_title(f"{doc['model']}: {t['coding']} coding, k = {t['k']}: {t['spikes_per_channel']:.2f} spikes/channel, "
                 f"sparsity {t['sparsity']:.1%}", fontsize=9)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")
    fig.tight_layout()
    return _save(fig, path)
