"""Readers for the datasets of the shared corpus (``../shared/corpus/datasets``), for tests.

Each ``read_*`` function takes explicit paths and returns plain numpy arrays; the ``load_*``
helpers find the files with ``tests.conftest.corpus_path`` (which skips the test when the corpus
is absent).
"""
from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np

from tests.conftest import corpus_path

#: Per-channel CIFAR-10 statistics (R, G, B) of the training set, the normalisation
#: ``cifar10_resnet_2b.onnx`` (vnncomp2021 ``resnet_2b``) was trained with.
CIFAR10_MEAN = np.array([0.4914, 0.4822, 0.4465], dtype=np.float32)
CIFAR10_STD = np.array([0.2471, 0.2435, 0.2616], dtype=np.float32)

IRIS_CLASSES = ("Iris-setosa", "Iris-versicolor", "Iris-virginica")


def read_idx(path: str | Path) -> np.ndarray:
    """An idx file (optionally gzip-compressed) as a uint8 array of its declared shape.

    Layout: magic (2 zero bytes, type code 0x08 = uint8, number of axes n), n big-endian
    uint32 sizes, then the data in C order. MNIST images have magic 2051 (3 axes), labels 2049.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte idx file")
    ndim = data[3]
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {body.size} data bytes for shape {dims}")
    return body.reshape(dims)


def read_mnist(images: str | Path, labels: str | Path, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST images as float32 (N, 1, 28, 28) with pixels / 255 in [0, 1], and int64 labels (N,)."""
    x = read_idx(images)[:n].astype(np.float32) / 255.0
    y = read_idx(labels)[:n].astype(np.int64)
    return x[:, None, :, :], y


def read_cifar10_csv(path: str | Path, normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The ERAN CIFAR-10 CSV (one row per image: label, then 32*32*3 uint8 in HWC order) as
    float32 NCHW images and int64 labels.

    Pixels become x / 255 in [0, 1]; ``normalize`` then applies (x - CIFAR10_MEAN) / CIFAR10_STD
    per channel. Finding (onnxruntime 1.31, CPU) for ``cifar10_resnet_2b.onnx`` on these 100
    images: normalised with mean (0.4914, 0.4822, 0.4465) and std (0.2471, 0.2435, 0.2616) gives
    the 77/100 the corpus README states; std (0.2023, 0.1994, 0.2010) gives 71/100, plain x / 255
    21/100 and raw 0..255 values 33/100. So the model expects the first normalisation.
    """
    rows = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    labels = rows[:, 0]
    x = rows[:, 1:].reshape(-1, 32, 32, 3).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    if normalize:
        x = (x - CIFAR10_MEAN.reshape(1, 3, 1, 1)) / CIFAR10_STD.reshape(1, 3, 1, 1)
    return np.ascontiguousarray(x, dtype=np.float32), labels


def read_iris_csv(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Iris.csv (Id, 4 features in cm, Species) as raw float32 features (150, 4) and int64 labels
    (setosa 0, versicolor 1, virginica 2). ``iris_mlp.onnx`` takes the raw centimetre values
    (98% correct under onnxruntime on all 150 rows)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    x = np.array(
        [[float(r[k]) for k in ("SepalLengthCm", "SepalWidthCm", "PetalLengthCm", "PetalWidthCm")] for r in rows],
        dtype=np.float32,
    )
    y = np.array([IRIS_CLASSES.index(r["Species"]) for r in rows], dtype=np.int64)
    return x, y


# --- corpus locations (skip when absent) ---------------------------------------------------------
def load_mnist_test(n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` (default all 10,000) MNIST test images and labels; see read_mnist."""
    return read_mnist(
        corpus_path("datasets", "mnist", "t10k-images-idx3-ubyte.gz"),
        corpus_path("datasets", "mnist", "t10k-labels-idx1-ubyte.gz"),
        n,
    )


def load_cifar10_eran100(normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The 100 CIFAR-10 test images of ERAN; see read_cifar10_csv."""
    return read_cifar10_csv(corpus_path("datasets", "cifar10_eran100", "cifar10_test.csv"), normalize)


def load_iris() -> tuple[np.ndarray, np.ndarray]:
    """All 150 Iris rows; see read_iris_csv."""
    return read_iris_csv(corpus_path("datasets", "iris", "Iris.csv"))
