"""The example models: an MLP and a CNN trained on scikit-learn's bundled digits (offline data).

    python examples/digits.py [--out examples/models] [--retrain]

writes, for each model, ``digits_<name>.onnx`` (torch.onnx.export) and ``digits_<name>.pt2``
(torch.export.save), plus the data as .npy files: ``x_train`` (calibration), ``x_test``,
``y_test`` (N, 1, 8, 8) float32 in [0, 1]. The split is fixed (25 % test, stratified,
random_state 0) and training is seeded, so the models are reproducible on one machine.
"""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "models"


def load_data() -> dict[str, np.ndarray]:
    """Digits 8x8 scaled to [0, 1], shaped (N, 1, 8, 8); fixed stratified 75/25 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0, stratify=y)
    return {"x_train": x_train, "y_train": y_train.astype(np.int64), "x_test": x_test, "y_test": y_test.astype(np.int64)}


def build_mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10)
    )


def build_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 2 * 2, 64), nn.ReLU(), nn.Linear(64, 10),
    )


MODELS = {"mlp": build_mlp, "cnn": build_cnn}


def train(model: nn.Module, data: dict[str, np.ndarray], *, epochs: int = 40, lr: float = 1e-2, seed: int = 0) -> float:
    """Adam, cross-entropy, mini-batches of 64; returns test accuracy."""
    torch.manual_seed(seed)
    for m in model.modules():  # re-initialise deterministically
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    x = torch.from_numpy(data["x_train"])
    y = torch.from_numpy(data["y_train"])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        sched.step()
    return accuracy(model, data)


@torch.no_grad()
def accuracy(model: nn.Module, data: dict[str, np.ndarray]) -> float:
    model.eval()
    pred = model(torch.from_numpy(data["x_test"])).argmax(1).numpy()
    return float(np.mean(pred == data["y_test"]))


def export(model: nn.Module, out: Path, name: str) -> dict[str, Path]:
    """Write ``<name>.onnx`` and ``<name>.pt2``."""
    model.eval()
    example = torch.zeros(1, 1, 8, 8)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / f"{name}.onnx"
    pt2_path = out / f"{name}.pt2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The TorchScript exporter needs no extra package (the dynamo one needs onnxscript).
        torch.onnx.export(model, (example,), str(onnx_path), dynamo=False, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}})
    torch.export.save(torch.export.export(model, (example,)), str(pt2_path))
    return {"onnx": onnx_path, "pt2": pt2_path}


def prepare(out: Path = DEFAULT_OUT, retrain: bool = False, log=print) -> dict:
    """Train (or reuse) both models and write models and data to ``out``. Returns a summary."""
    out = Path(out)
    summary_path = out / "summary.json"
    data = load_data()
    if summary_path.exists() and not retrain:
        summary = json.loads(summary_path.read_text())
        if all((out / f"digits_{k}.onnx").exists() and (out / f"digits_{k}.pt2").exists() for k in MODELS):
            log(f"using the trained models in {out} (--retrain to train again)")
            return summary
    out.mkdir(parents=True, exist_ok=True)
    for key in ("x_train", "x_test", "y_test", "y_train"):
        np.save(out / f"{key}.npy", data[key])
    summary = {"models": {}}
    for name, build in MODELS.items():
        model = build()
        acc = train(model, data)
        paths = export(model, out, f"digits_{name}")
        summary["models"][name] = {"ann_accuracy": acc, **{k: str(v) for k, v in paths.items()}}
        log(f"trained digits {name}: ANN test accuracy {100 * acc:.2f}%")
    summary_path.write_text(json.dumps(summary, indent=1))
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args()
    prepare(args.out, args.retrain)


if __name__ == "__main__":
    main()
