"""The one affine folder (ir/affine.py), used by both frontends and the fold-affine pass, on
hand-computed cases."""
from __future__ import annotations

import numpy as np

import snc.ir as ir
from snc.ir import affine


def test_dense_absorbs_a_per_output_scale_and_shift():
    d = ir.Dense(weight=np.array([[1, 2], [3, 4]], np.float32), bias=np.array([1, 1], np.float32))
    out = affine.into_linear(d, np.array([2, 3]), np.array([1, -1]), (2,))
    np.testing.assert_array_equal(out.weight, [[2, 4], [9, 12]])
    np.testing.assert_array_equal(out.bias, [3, 2])
    assert out.weight.dtype == np.float32 and d.bias.tolist() == [1, 1]  # the original is untouched


def test_frontends_fold_a_shift_but_keep_the_weights():
    d = ir.Dense(weight=np.array([[1, 2], [3, 4]], np.float32))
    assert affine.into_linear(d, np.array([2, 3]), 0.0, (2,), scale_weights=False) is None
    out = affine.into_linear(d, 1.0, np.array([0.5, -1]), (2,), scale_weights=False)
    np.testing.assert_array_equal(out.weight, d.weight)
    np.testing.assert_array_equal(out.bias, [0.5, -1])


def test_conv_folds_only_per_channel_constants():
    c = ir.Conv2d(weight=np.ones((2, 1, 1, 1), np.float32))
    shape = (2, 3, 3)
    out = affine.into_linear(c, np.array([2.0, 4.0]).reshape(2, 1, 1), 1.0, shape)
    np.testing.assert_array_equal(out.weight.reshape(-1), [2, 4])
    np.testing.assert_array_equal(out.bias, [1, 1])
    varying = np.arange(18, dtype=np.float32).reshape(shape)  # differs inside a channel
    assert affine.into_linear(c, 1.0, varying, shape) is None
    assert affine.per_channel(varying, shape) is None
    assert affine.per_channel(np.zeros((0,)), (0,)) is None


def test_compose_is_the_second_map_after_the_first():
    first = ir.ScaleShift(scale=np.float32(2.0), shift=np.float32(1.0), meta={"from": "first"})
    both = affine.compose(first, np.float32(3.0), np.float32(-4.0))
    x = np.array([0.0, 1.0, -2.5], np.float32)
    np.testing.assert_array_equal(x * both.scale + both.shift, (x * 2 + 1) * 3 - 4)
    assert both.meta == {"from": "first"} and both.meta is not first.meta
    assert affine.compose(first, 1.0, 0.0, meta={"m": 1}).meta == {"m": 1}
