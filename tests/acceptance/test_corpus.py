"""Conformance on real, externally produced models (../shared/corpus; skipped where absent).

Issue 2 acceptance: every ONNX model of the corpus compiles; the two MNIST models, calibrated
on the first 1000 MNIST test images and scored on the other 9000, keep the SNN accuracy within
1.0 point of the same model run in onnxruntime on the same 9000; the CIFAR-10 ResNet compiles
and simulates on the 100-image CSV.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from snc.passes import CONVERSION
import snc
from snc.backends.sim import simulate
from tests.conftest import corpus_path
from tests.corpus_data import load_cifar10_eran100, load_iris, load_mnist_test


def _onnxruntime(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = [d if isinstance(d, int) else -1 for d in inp.shape]
    fixed_batch = shape[0] == 1
    x = x.reshape([len(x)] + shape[1:])
    if fixed_batch:
        return np.concatenate([sess.run(None, {inp.name: x[i:i + 1]})[0] for i in range(len(x))])
    return sess.run(None, {inp.name: x})[0]


def _data_for(name):
    if name.startswith("mnist"):
        return load_mnist_test(1000)
    if name.startswith("cifar"):
        return load_cifar10_eran100()
    return load_iris()


@pytest.mark.parametrize("name", ["mnist_convnet_avgpool", "mnist-net_256x2", "cifar10_resnet_2b", "iris_mlp"])
def test_every_corpus_model_compiles_and_simulates(name):
    path = corpus_path("onnx", f"{name}.onnx")
    x, y = _data_for(name)
    graph = snc.load_model(path)
    x = x.reshape((len(x),) + graph.nodes[graph.input_names[0]].shape)
    snn = snc.compile(graph, calib=x, passes=CONVERSION)
    assert snn.is_spiking
    r = simulate(snn, x[:20], labels=y[:20], timesteps=32)
    assert r.samples == 20 and r.totals()["spikes_per_sample"] > 0


@pytest.mark.parametrize("name, timesteps", [("mnist_convnet_avgpool", 32), ("mnist-net_256x2", 64)])
def test_mnist_models_keep_onnxruntime_accuracy(name, timesteps):
    path = corpus_path("onnx", f"{name}.onnx")
    x, y = load_mnist_test()
    graph = snc.load_model(path)
    x = x.reshape((len(x),) + graph.nodes[graph.input_names[0]].shape)
    calib, x_test, y_test = x[:1000], x[1000:], y[1000:]
    reference = float(np.mean(_onnxruntime(path, x_test).argmax(axis=1) == y_test))
    snn = snc.compile(graph, calib=calib, passes=CONVERSION)
    r = simulate(snn, x_test, labels=y_test, timesteps=timesteps, batch_size=16)
    print(f"{name}: onnxruntime {reference:.4f}, SNN (T={timesteps}) {r.accuracy:.4f}")
    assert len(x_test) == 9000
    assert abs(r.accuracy - reference) <= 0.010


def test_cifar_resnet_simulates_and_tracks_onnxruntime():
    path = corpus_path("onnx", "cifar10_resnet_2b.onnx")
    x, y = load_cifar10_eran100()
    reference = _onnxruntime(path, x).argmax(axis=1)
    assert np.mean(reference == y) == pytest.approx(0.77)  # the corpus README's figure
    snn = snc.compile(snc.load_model(path), calib=x, passes=CONVERSION)
    kinds = [n.kind for n in snn.nodes.values()]
    assert kinds.count("IF") == 6 and "Add" in kinds  # two residual joins kept
    r = simulate(snn, x, labels=y, timesteps=256, batch_size=50)
    # Residual joins are balanced consistently: the SNN follows the ANN closely at T = 256.
    assert np.mean(r.predictions == reference) >= 0.95
    assert r.accuracy >= 0.74
