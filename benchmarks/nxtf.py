"""snc's Loihi estimate of the two converted networks NxTF measured on Loihi silicon.

Rueckauer et al., "NxTF: An API and Compiler for Deep Spiking Neural Networks on Intel Loihi",
ACM JETC 2022 (arXiv 2101.04261), measured two converted (rate-coded) networks on Loihi 1:

* MNIST, a 4-layer CNN: 0.79 % error, 0.66 mJ and 6.65 ms per inference on 14 cores;
* CIFAR-10, an off-the-shelf MobileNet: 8.52 % error, 102 mJ and 340 ms per inference on
  861 cores of 7 chips.

This script rebuilds both in PyTorch as far as the sources describe them (``PAPER_FACTS`` says
where each detail was read and how well it is known), compiles them with snc at the paper's T
and input coding, estimates them on snc's ``loihi`` profile and prints a markdown table of snc's
energy, latency, cores, chips and accuracy beside the measured figures, with the main reasons
for each difference. The MNIST CNN is trained briefly on real MNIST (the first 8,000 images of
the t10k file, scored on the last 2,000); MobileNet has no CIFAR-10 training set here, so it
runs with fixed-seed weights (batch-norm statistics set on the images, then folded), and its
spike rates and accuracy are not those of a trained network.

The input coding is NxTF's input layer (``NxInputLayer``): one compartment per pixel whose bias
is the pixel value, spiking at a rate proportional to it on the chip. Here it is an explicit
population (a frozen 1x1 identity convolution + ReLU in front of the first layer), so snc maps
it onto cores and the host only writes the biases (its ``(host: analog input)`` row).

    python benchmarks/nxtf.py [--quick] [--samples N] [--only mnist|mobilenet] [--out FILE.md]
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import snc  # noqa: E402

SHARED = ROOT.parent / "shared" / "corpus" / "datasets"
MNIST_IMAGES = SHARED / "mnist" / "t10k-images-idx3-ubyte.gz"
MNIST_LABELS = SHARED / "mnist" / "t10k-labels-idx1-ubyte.gz"
CIFAR_CSV = SHARED / "cifar10_eran100" / "cifar10_test.csv"

# ---------------------------------------------------------------------------------------------
# What the sources say. Grades as in ../shared/reference/ENERGY_AND_METRICS.md: P primary,
# S secondary, D derived here, R recalled, NF looked for and not found, A our assumption.

NOTE = "research note 'The Intel Loihi 1 / Loihi 2 Stack' (index id 69561059207), section 4, citing NxTF [3][8]"
TUTORIAL = "intel-nrc-ecosystem/models@39dc1e8 nxsdk_modules_ncl/dnn/tutorials/a_image_classification_mnist.ipynb (NxTF's own MNIST tutorial)"
PAPER_FACTS: list[tuple[str, str, str, str]] = [
    ("MNIST result on Loihi", "0.79 % error, 0.66 mJ, 6.65 ms, EDP 4.38 uJ s, 14 neurocores", NOTE, "S"),
    ("MNIST ANN (CPU / GPU TensorFlow)", "0.74 % error; 19 mJ / 0.4 ms (CPU), 111 mJ / 2 ms (GPU)", NOTE, "S"),
    ("MNIST network", "'4-layer CNN trained in Keras', converted with SNN Toolbox (Rueckauer et al. 2017 rate coding)", NOTE, "S"),
    ("MNIST layer shapes", "28x28x1 -> conv 16 5x5 s2 (12x12x16) -> conv 32 3x3 (10x10x32) -> conv 64 3x3 s2 (4x4x64) "
     "-> conv 10 4x4 (1x1x10), ReLU, biases, dropout 0.1; 33,802 parameters",
     TUTORIAL + "; that this is the paper's network is our assumption (both: NxTF authors, Keras, 4 conv layers, ~99 %)", "P/A"),
    ("MNIST T", "100 time steps", "Quartz (Lenz, Orchard, Sheik, arXiv 2309.16795) comparison table, as quoted by the " + NOTE, "S"),
    ("CIFAR-10 result on Loihi", "8.52 % error, 102 mJ, 340 ms, EDP 34,926 uJ s; 'fits on 861 cores when compiled by NxTF', "
     "'the 7 chips required by MobileNet' (Sec. 3.2.3)", NOTE, "S"),
    ("CIFAR-10 ANN (CPU / GPU)", "8.07 % error; 157 mJ / 3 ms (CPU), 1035 mJ / 18 ms (GPU)", NOTE, "S"),
    ("CIFAR-10 network", "'an off-the-shelf MobileNet'", "NxTF abstract (ar5iv.labs.arxiv.org/html/2101.04261)", "P"),
    ("MobileNet depth", "28 layers (1 conv, 13 depthwise + 13 pointwise, 1 dense), 4 M parameters at 1000 classes; "
     "stated for the 128x128 compiler benchmark", "NxTF abstract (ar5iv)", "P"),
    ("CIFAR-10 MobileNet input size, width (alpha), activation", "NF; we assume native 32x32x3, alpha = 1, ReLU (not ReLU6: "
     "Rueckauer's snn_toolbox mobilenet/debug.py replaces ReLU6 by ReLU)",
     "snn_toolbox@09496a6 scripts/ann_architectures/mobilenet/debug.py", "A (P for the ReLU detail)"),
    ("CIFAR-10 T", "400 time steps", "Quartz comparison table, as quoted by the " + NOTE, "S"),
    ("input coding", "input layer of compartments driven by biases = pixel values (NxInputLayer(biasExp, vThMant)); "
     "pixels / 255 in [0, 1]; tutorial vThMant = 512, biasExp = 6",
     "intel-nrc-ecosystem/models nxsdk_modules_ncl/dnn/src/dnn_layers.py (index id 4570590529) and the tutorial", "P"),
    ("reset", "converted models use soft reset (reset by subtraction) built from 2 compartments per neuron; "
     "SLAYER models hard reset", NOTE + " (another public survey says the paper does not state the mode of the 8.52 % run)", "S (conflicting)"),
    ("weights", "8-bit weights, weightExponent 0, 12-bit biases in the CIFAR tutorial config", "intel-nrc-ecosystem/models "
     "dnn/tutorials/b_image_classification_cifar.ipynb", "P (tutorial, not the paper run)"),
    ("what the energy figure includes (static, x86 management, I/O)", "NF; NxSDK energy probes measure the board; "
     "we assume total energy incl. static power of the chips in use and the Lakemont management", "-", "NF/A"),
    ("per-step wall time on silicon", "MNIST 6.65 ms / 100 = 66.5 us; CIFAR-10 340 ms / 400 = 850 us", "from the rows above", "D"),
]

MEASURED: dict[str, dict[str, Any]] = {
    "mnist": {"title": "MNIST CNN", "energy_j": 0.66e-3, "latency_s": 6.65e-3, "cores": 14, "chips": 1,
              "accuracy": 1 - 0.0079, "T": 100},
    "mobilenet": {"title": "CIFAR-10 MobileNet", "energy_j": 102e-3, "latency_s": 340e-3, "cores": 861, "chips": 7,
                  "accuracy": 1 - 0.0852, "T": 400},
}


# ---------------------------------------------------------------------------------------------
# The networks.


class InputCompartments(nn.Module):
    """NxTF's input layer: one compartment per pixel, its bias the pixel value, spiking at a rate
    proportional to it. A frozen 1x1 identity (depthwise) convolution followed by ReLU, so the
    converter turns it into a spiking population driven by a bias current equal to the pixel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1, groups=channels, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
        self.conv.weight.requires_grad_(False)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x))


def mnist_cnn() -> nn.Sequential:
    """The NxTF MNIST CNN (layer shapes of the NxTF tutorial; PAPER_FACTS)."""
    return nn.Sequential(OrderedDict([
        ("input", InputCompartments(1)),
        ("conv1", nn.Conv2d(1, 16, 5, stride=2)), ("relu1", nn.ReLU()), ("drop1", nn.Dropout(0.1)),    # 12x12x16
        ("conv2", nn.Conv2d(16, 32, 3)), ("relu2", nn.ReLU()), ("drop2", nn.Dropout(0.1)),             # 10x10x32
        ("conv3", nn.Conv2d(32, 64, 3, stride=2)), ("relu3", nn.ReLU()), ("drop3", nn.Dropout(0.1)),   # 4x4x64
        ("conv4", nn.Conv2d(64, 10, 4)),                                                               # 1x1x10
        ("flatten", nn.Flatten()),   # the softmax is dropped: the readout takes the logits
    ]))


#: MobileNet v1 (Howard et al. 2017; Keras applications): after the first conv, 13 blocks of
#: (pointwise filters, depthwise stride).
MOBILENET_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
                    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


def _conv_bn(name: str, c_in: int, c_out: int, k: int, stride: int, groups: int = 1) -> list[tuple[str, nn.Module]]:
    return [(name, nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, groups=groups, bias=False)),
            (f"{name}_bn", nn.BatchNorm2d(c_out, momentum=None)), (f"{name}_relu", nn.ReLU())]


def mobilenet(alpha: float = 1.0, classes: int = 10) -> nn.Sequential:
    """MobileNet v1 for 32x32x3 inputs with ReLU: 28 weight layers (PAPER_FACTS)."""
    c = int(32 * alpha)
    layers: list[tuple[str, nn.Module]] = [("input", InputCompartments(3))] + _conv_bn("conv1", 3, c, 3, 2)
    for i, (filters, stride) in enumerate(MOBILENET_BLOCKS, start=1):
        f = int(filters * alpha)
        layers += _conv_bn(f"dw{i}", c, c, 3, stride, groups=c)   # depthwise 3x3
        layers += _conv_bn(f"pw{i}", c, f, 1, 1)                  # pointwise 1x1
        c = f
    layers += [("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(c, classes))]
    return nn.Sequential(OrderedDict(layers))


def init_mobilenet(model: nn.Sequential, images: np.ndarray, seed: int = 0) -> None:
    """Fixed-seed He-normal weights; batch-norm statistics taken from ``images`` (cumulative
    averages), so every pre-activation is roughly zero-mean, unit-variance and about half the
    ReLUs are active. Not a trained network."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)) and m.weight.requires_grad:
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.zero_()
        model.train()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
        model(torch.from_numpy(images))
    model.eval()


# ---------------------------------------------------------------------------------------------
# Data.


def load_mnist(quick: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """(x_train, y_train, x_test, y_test, description); pixels / 255, NCHW."""
    if MNIST_IMAGES.exists() and MNIST_LABELS.exists():
        from tests.corpus_data import read_mnist

        x, y = read_mnist(MNIST_IMAGES, MNIST_LABELS)
        desc = "MNIST t10k: first 8,000 images to train, last 2,000 to score"
        x_tr, y_tr, x_te, y_te = x[:8000], y[:8000], x[-2000:], y[-2000:]
    else:  # no shared corpus: scikit-learn's 8x8 digits upsampled to 28x28
        from sklearn.datasets import load_digits

        d = load_digits()
        img = torch.from_numpy(d.images.astype(np.float32)[:, None] / 16.0)
        x = torch.nn.functional.interpolate(img, size=(28, 28), mode="bilinear", align_corners=False).numpy()
        y = d.target.astype(np.int64)
        desc = "NOT MNIST: ../shared is absent, scikit-learn digits (8x8) upsampled to 28x28, 75/25 split"
        cut = int(0.75 * len(x))
        x_tr, y_tr, x_te, y_te = x[:cut], y[:cut], x[cut:], y[cut:]
    if quick:
        x_tr, y_tr = x_tr[:1000], y_tr[:1000]
    return x_tr, y_tr, x_te, y_te, desc


def load_cifar() -> tuple[np.ndarray, np.ndarray, str]:
    if CIFAR_CSV.exists():
        from tests.corpus_data import read_cifar10_csv

        x, y = read_cifar10_csv(CIFAR_CSV, normalize=False)   # NxTF: pixels / 255 in [0, 1]
        return x, y, "the 100 CIFAR-10 test images of ../shared (ERAN csv), pixels / 255"
    rng = np.random.default_rng(0)
    return (rng.random((100, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, 100),
            "NOT CIFAR-10: ../shared is absent, 100 random 32x32x3 images")


def train_mnist(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0) -> None:
    torch.manual_seed(seed)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=2e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = order[i:i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    model.eval()


def ann_accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


# ---------------------------------------------------------------------------------------------
# Compile and estimate.


@dataclass
class Run:
    key: str
    data: str
    samples: int
    timesteps: int
    ann_accuracy: float
    totals: dict[str, Any] = field(default_factory=dict)
    layers: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    error: str | None = None   # the one-line error when snc could not compile, map or estimate
    notes: list[str] = field(default_factory=list)   # what prune and map reported


def compile_and_estimate(key: str, model: nn.Module, x_cal: np.ndarray, x: np.ndarray, y: np.ndarray,
                         timesteps: int, data: str, ann: float) -> Run:
    from snc.estimate import estimate

    run = Run(key, data, len(x), timesteps, ann)
    try:
        t0 = time.perf_counter()
        graph = snc.from_torch(model, x[:2])
        # verify=False: the default compile simulates nothing (tests.conftest sets SNC_VERIFY=1).
        snn = snc.compile(graph, calib=x_cal, timesteps=timesteps, verify=False)
        run.seconds["compile"] = time.perf_counter() - t0
        run.notes = [f"[{e['pass']}] {e['message']}" for e in snn.meta["report"]
                     if (e["pass"] == "prune" and (e["message"].startswith("on loihi") or "in total" in e["message"]))
                     or (e["pass"] == "map" and ("cores on" in e["message"] or "limits that bind" in e["message"]))]
        t0 = time.perf_counter()
        est = estimate(snn, x, labels=y, hw=["loihi"], timesteps=timesteps, calibration=x_cal)
        run.seconds["estimate"] = time.perf_counter() - t0
    except snc.SncError as exc:
        run.error = f"{type(exc).__name__}: {exc}"
        return run
    run.totals = dict(est.doc["per_hw"]["loihi"]["totals"])
    run.layers = est.doc["per_hw"]["loihi"]["layers"]
    return run


def run_mnist(quick: bool, samples: int | None, epochs: int) -> Run:
    torch.set_num_threads(1)
    x_tr, y_tr, x_te, y_te, desc = load_mnist(quick)
    n = samples or (20 if quick else len(x_te))
    torch.manual_seed(0)
    model = mnist_cnn()
    t0 = time.perf_counter()
    train_mnist(model, x_tr, y_tr, 1 if quick else epochs)
    train_s = time.perf_counter() - t0
    ann = ann_accuracy(model, x_te[:n], y_te[:n])
    run = compile_and_estimate("mnist", model, x_tr[:500], x_te[:n], y_te[:n], MEASURED["mnist"]["T"], desc, ann)
    run.seconds["train"] = train_s
    return run


def run_mobilenet(quick: bool, samples: int | None) -> Run:
    torch.set_num_threads(1)
    x, y, desc = load_cifar()
    n = samples or (2 if quick else len(x))
    model = mobilenet()
    init_mobilenet(model, x)
    ann = ann_accuracy(model, x[:n], y[:n])
    return compile_and_estimate("mobilenet", model, x, x[:n], y[:n], MEASURED["mobilenet"]["T"],
                                desc + "; fixed-seed weights, not trained", ann)


# ---------------------------------------------------------------------------------------------
# The table.


def _ratio(a: float | None, b: float) -> str:
    return "-" if a is None or not b else f"{a / b:.3g}"


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "mJ":
        return f"{v * 1e3:.4g} mJ"
    if unit == "ms":
        return f"{v * 1e3:.4g} ms"
    if unit == "%":
        return f"{100 * v:.2f} %"
    return f"{v:g}"


def reasons(run: Run) -> dict[str, str]:
    """The main reasons for each difference, with snc's own numbers filled in."""
    m, t = MEASURED[run.key], run.totals
    T = run.timesteps
    step_snc = t["latency_s"] / T
    step_si = m["latency_s"] / T
    dyn, stat, whole = t["dynamic_energy_j"], t["static_energy_j"], t["static_energy_whole_chips_j"]
    static_at_si = 0.104 * m["chips"] * m["latency_s"]
    by_cores = sorted((l for l in run.layers if l["kind"] != "host"), key=lambda l: -l["cores"])[:3]
    top = ", ".join(f"{l['name']} {l['cores']}" for l in by_cores)
    binds = "; ".join(n.split("; ", 1)[1] for n in run.notes if "limits that bind" in n) or "limits: see the map report"
    before = [n for n in run.notes if n.startswith("[prune] on loihi")]
    pruned = (f"snc's prune removed neurons that provably never fire or reach no output ({before[0].split(': ', 1)[1].split(', energy')[0]}); "
              if before else "")
    out = {
        "energy": (
            f"snc = chip dynamic {dyn * 1e3:.3g} mJ (Davies 2018 Table 2 pre-silicon per-term minima: 23.6 pJ/synop, "
            f"81/52 pJ per active/inactive neuron update, 1.7 pJ/spike + hops) + static of the {t['cores_used']} cores used "
            f"{stat * 1e3:.3g} mJ (0.104 W/chip x cores/128 x snc's latency) + host {t['host_energy_j'] * 1e3:.2g} mJ; "
            f"snc's dynamic part alone is {dyn / m['energy_j']:.2g}x the measured energy. What the silicon figure "
            f"includes is not stated (NF): static power of 0.104 W/chip (Frady 2020) over the measured latency would "
            f"alone be 0.104 W x {m['chips']} chip(s) x {m['latency_s'] * 1e3:g} ms = {static_at_si * 1e3:.3g} mJ, "
            f"{static_at_si / m['energy_j']:.0%} of the measured energy, so the measurement holds little or no static "
            f"energy at that power (D): it is close to dynamic energy, which snc's per-term minima undercount "
            f"(no x86 management, I/O or input bias writes)."),
        "latency": (
            f"snc {step_snc * 1e6:.3g} us per step (slowest core's Table 2 busy time + 113-465 ns barrier) vs "
            f"{step_si * 1e6:.3g} us measured ({m['latency_s'] * 1e3:g} ms / T = {T}). The measured step includes "
            f"what snc does not model: the x86 (Lakemont) management and host I/O per step, writing the input biases, "
            f"resetting the network between samples (NxTF reset snip)"
            + (", and inter-chip link congestion (links ~30x slower than on-chip; snc charges 195 ns per crossing)."
               if m["chips"] > 1 else ".")),
        "cores": (
            f"snc's map pass vs NxTF's partitioner. snc's layers with most core blocks: {top} ({binds}; blocks of "
            f"different layers may share a core). "
            f"{pruned}NxTF's soft reset takes 2 compartments per neuron (S), snc's reset by subtraction one; both put "
            f"the input layer on chip; snc cuts feature maps into spatial bands (all channels of a few pixel rows, "
            f"so a block reads a local window), NxTF partitions conv layers its own way"
            + (" and spreads them over more chips (NxTF's num_cores_per_chip option)." if m["chips"] > 1 else ".")),
        "chips": ("snc fills 128 cores per chip before the next; NxTF spread the network over 7 chips "
                  "(861 cores: 123 per chip on average)." if m["chips"] > 1 else "Both fit one chip."),
        "accuracy": (
            f"snc's float32 simulation at T = {T} on {run.samples} image(s) of {run.data}; ANN {100 * run.ann_accuracy:.2f} %. "
            + ("Brief training (a few epochs on 8,000 images, not the full 60,000) vs the paper's ANN 0.74 % error."
               if run.key == "mnist" else "Untrained fixed-seed weights: chance level expected; not comparable.")),
    }
    return out


def table(runs: list[Run]) -> str:
    head = "| network | quantity | snc | NxTF measured | snc / measured | main reasons for the difference |\n|---|---|---|---|---|---|\n"
    rows = []
    for run in runs:
        m = MEASURED[run.key]
        if run.error:
            rows.append(f"| {m['title']} | (all) | snc failed: `{run.error}` | - | - | - |")
            continue
        t, why = run.totals, reasons(run)
        for label, key, unit, snc_v, meas in (
            ("energy per inference", "energy", "mJ", t["energy_j"], m["energy_j"]),
            ("latency per inference", "latency", "ms", t["latency_s"], m["latency_s"]),
            ("cores", "cores", "", t["cores"], m["cores"]),
            ("chips", "chips", "", t["chips"], m["chips"]),
            ("accuracy", "accuracy", "%", t.get("accuracy"), m["accuracy"]),
        ):
            rows.append(f"| {m['title']} (T = {run.timesteps}) | {label} | {_fmt(snc_v, unit)} | {_fmt(meas, unit)} | "
                        f"{_ratio(snc_v, meas)} | {why[key]} |")
    return head + "\n".join(rows) + "\n"


def facts_table() -> str:
    rows = ["| detail | value | where read | grade |", "|---|---|---|---|"]
    rows += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in PAPER_FACTS]
    return "\n".join(rows) + "\n"


def breakdown(run: Run) -> str:
    if run.error:
        return f"* {MEASURED[run.key]['title']}: snc could not finish: `{run.error}`\n"
    t = run.totals
    lines = [f"* {MEASURED[run.key]['title']}: {run.samples} sample(s), T = {run.timesteps}; "
             f"synops/inference {t['synops']:.4g}, activation sparsity {t['activation_sparsity']:.3f}; "
             f"energy {t['energy_j']:.4g} J = chip dynamic {t['dynamic_energy_j']:.4g} + static (cores used) "
             f"{t['static_energy_j']:.4g} + host {t['host_energy_j']:.3g} + delivery {t['host_delivery_energy_j']:.3g}; "
             f"whole-chip static {t['static_energy_whole_chips_j']:.4g} J (not added); "
             f"times: " + ", ".join(f"{k} {v:.1f} s" for k, v in run.seconds.items())]
    per = ", ".join(f"{l['name']} {l['cores']}" for l in run.layers if l["kind"] != "host")
    lines.append(f"  core blocks per population (several blocks may share a core): {per}")
    lines += [f"  {n}" for n in run.notes]
    return "\n".join(lines) + "\n"


def report(runs: list[Run]) -> str:
    parts = ["### NxTF on Loihi: snc's estimate beside the measurement\n",
             "Sources and how well each detail is known (P primary, S secondary, D derived, A assumption, NF not found):\n",
             facts_table(), "", table(runs), "",
             "MobileNet's weights are fixed-seed, not trained (no CIFAR-10 training set offline): its spike rates, "
             "energy, latency and accuracy are those of a random network, not of NxTF's trained MobileNet.\n", ""]
    parts += [breakdown(r) for r in runs]
    return "\n".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny subsets (smoke test)")
    ap.add_argument("--samples", type=int, default=None, help="test samples per network (default: 2000 MNIST, 100 CIFAR)")
    ap.add_argument("--epochs", type=int, default=3, help="MNIST training epochs")
    ap.add_argument("--only", choices=("mnist", "mobilenet"), default=None)
    ap.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    args = ap.parse_args()
    t0 = time.perf_counter()
    runs = []
    if args.only in (None, "mnist"):
        runs.append(run_mnist(args.quick, args.samples, args.epochs))
    if args.only in (None, "mobilenet"):
        runs.append(run_mobilenet(args.quick, args.samples))
    text = report(runs) + f"\nWall time of this run: {time.perf_counter() - t0:.0f} s\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
