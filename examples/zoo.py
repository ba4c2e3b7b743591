"""Standard network shapes users bring, for benchmarks and tests (weights random or quickly trained).

* ``resnet20``   - CIFAR ResNet-20 (He et al. 2016): conv16-BN-ReLU, 3 stages x 3 basic blocks
                   (16, 32, 64 channels; stride-2 1x1 conv + BN shortcuts), global average pool,
                   Linear 64->10; 0.27 M parameters, input (3, 32, 32).
* ``mnist_cnn2`` - the ONNX Model Zoo mnist-8 shape: Conv(1->8, k5, pad 2)-ReLU-MaxPool(2),
                   Conv(8->16, k5, pad 2)-ReLU-MaxPool(3), Flatten, MatMul 256->10.
* ``mnist_conv1`` - Conv(1->32, k2)-ReLU-MaxPool(4)-Linear(1152->10) (23,328 spiking neurons).
* ``normalised_mlp`` - normalisation inside the graph ((x - mean) / std), Flatten, ``depth``
                   Linear+ReLU layers of ``width`` and a Linear readout.

``export_onnx`` writes a module to ONNX (the TorchScript exporter: no extra dependencies);
``train`` fits a classifier in a few epochs of Adam on the given data.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.relu2 = nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu2(y + self.shortcut(x))


class ResNet20(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
        blocks = []
        cin = 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                blocks.append(BasicBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


def resnet20(seed: int = 0) -> nn.Module:
    """ResNet-20 with random weights and non-trivial BatchNorm statistics (as after training)."""
    torch.manual_seed(seed)
    model = ResNet20()
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
            m.weight.data.copy_(0.5 + 0.5 * torch.rand(c, generator=gen))
            m.bias.data.copy_(0.1 * torch.randn(c, generator=gen))
    return model.eval()


def mnist_cnn2() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 10),
    )


def mnist_conv1() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 32, 2), nn.ReLU(), nn.MaxPool2d(4), nn.Flatten(), nn.Linear(32 * 6 * 6, 10))


class Normalise(nn.Module):
    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("std", torch.tensor(float(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std  # exported as constant Sub then Div


def normalised_mlp(n_in: int, mean: float, std: float, depth: int = 9, width: int = 200, classes: int = 10) -> nn.Module:
    layers: list[nn.Module] = [Normalise(mean, std), nn.Flatten()]
    prev = n_in
    for _ in range(depth):
        layers += [nn.Linear(prev, width), nn.ReLU()]
        prev = width
    layers.append(nn.Linear(prev, classes))
    return nn.Sequential(*layers)


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int = 10, lr: float = 1e-3, seed: int = 0,
          batch: int = 64) -> nn.Module:
    """A few epochs of Adam with cross-entropy (seeded)."""
    torch.manual_seed(seed)
    xt, yt = torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(np.asarray(y, np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt))
        for i in range(0, len(xt), batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()


def export_onnx(model: nn.Module, example: np.ndarray, path: str | Path) -> Path:
    import warnings

    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.from_numpy(np.asarray(example[:1], np.float32)),), str(path), dynamo=False)
    return path


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.inference_mode():
        return float((model(torch.from_numpy(np.asarray(x, np.float32))).argmax(1).numpy() == y).mean())
