"""Spike coding (ir/spike_coding.py) on hand-computed cases: thresholds, counts, the four
codings with negatives, zeros and very large counts, the steps each needs, and the
reconstruction identity V_th * sum_t w_t W s_t = W (V_th c), exact on the quantisation grid."""
from __future__ import annotations

import numpy as np
import pytest

from snc.errors import InvalidData
from snc.ir import spike_coding as sc


def test_threshold_is_mean_abs_over_k_per_token_and_clamped():
    x = np.array([[3.0, -3.0, 6.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    vth = sc.adaptive_threshold(x, k=3)
    np.testing.assert_array_equal(vth, [[1.0], [1e-5]])  # mean |x| = 3 -> 1; silent token -> the floor
    np.testing.assert_array_equal(sc.adaptive_threshold(x[:1], k=2), [[1.5]])
    with pytest.raises(InvalidData, match="k must be > 0"):
        sc.adaptive_threshold(x, k=0)


def test_counts_round_half_to_even_and_report_clipping():
    c, clipped = sc.counts(np.array([2.5, 3.5, -2.5, 0.49, 12.0]), np.array(1.0))
    assert c.tolist() == [2, 4, -2, 0, 12] and clipped == 0.0
    c, clipped = sc.counts(np.array([2.5, 3.5, -20.0, 12.0]), np.array(1.0), max_count=7)
    assert c.tolist() == [2, 4, -7, 7] and clipped == 0.5


def test_binary():
    c = np.array([0, 2, 3])
    assert sc.steps(c, "binary") == 3
    np.testing.assert_array_equal(sc.expand(c, "binary"), [[0, 1, 1], [0, 1, 1], [0, 0, 1]])
    with pytest.raises(InvalidData, match="unsigned"):
        sc.expand(np.array([1, -1]), "binary")


def test_ternary():
    c = np.array([-2, 0, 1])
    assert sc.steps(c, "ternary") == 2
    np.testing.assert_array_equal(sc.expand(c, "ternary"), [[-1, 0, 1], [-1, 0, 0]])


def test_bitwise_is_twos_complement_msb_first():
    c = np.array([-3, 0, 2, 5])  # 5 = 0101 needs four bits with its sign bit; -3 = 1101
    assert sc.steps(c, "bitwise") == 4
    np.testing.assert_array_equal(sc.weights("bitwise", 4), [-8, 4, 2, 1])
    np.testing.assert_array_equal(sc.expand(c, "bitwise").T, [[1, 1, 0, 1], [0, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 1]])
    # widths: 0 and -1 fit one bit, 1 needs two (01), 255 and -256 nine, 256 ten
    for value, bits in [(0, 1), (-1, 1), (1, 2), (-2, 2), (255, 9), (-256, 9), (256, 10)]:
        assert sc.steps(np.array([value]), "bitwise") == bits, value
    # more steps than needed sign-extend and decode the same
    np.testing.assert_array_equal(sc.decode(sc.expand(c, "bitwise", 7), "bitwise"), c)


def test_bitwise_ternary_is_signed_bits_of_the_magnitude():
    c = np.array([-3, 0, 2, 5, -1])  # |c| in 3 bits: 011, 000, 010, 101, 001, each with c's sign
    assert sc.steps(c, "bitwise_ternary") == 3
    np.testing.assert_array_equal(sc.weights("bitwise_ternary", 3), [4, 2, 1])
    np.testing.assert_array_equal(sc.expand(c, "bitwise_ternary").T,
                                  [[0, -1, -1], [0, 0, 0], [0, 1, 0], [1, 0, 1], [0, 0, -1]])
    assert sc.events_per_entry(c, "bitwise_ternary").tolist() == [2, 0, 1, 2, 1]
    assert sc.events_per_entry(c, "bitwise").tolist() == [3, 0, 1, 2, 4]  # -1 = 1111: four events
    assert sc.steps(np.zeros(3, np.int64), "bitwise_ternary") == 0


def test_graded_is_one_event_with_the_count_as_payload():
    c = np.array([0, -7, 100])
    assert sc.steps(c, "graded") == 1
    np.testing.assert_array_equal(sc.expand(c, "graded", payload_bits=8), [[0, -7, 100]])
    with pytest.raises(InvalidData, match="8-bit graded payload"):
        sc.expand(np.array([128]), "graded", payload_bits=8)


@pytest.mark.parametrize("coding", ["binary", "ternary", "bitwise", "graded", "bitwise_ternary"])
def test_decoding_is_exact_including_very_large_counts(coding):
    big = np.array([0, 3, 2**20 + 1, 7]) if coding in ("binary", "ternary") else np.array([0, -(2**40), 2**40 - 1, -1, 5])
    if coding == "ternary":
        big = np.array([0, -3, 2**20 + 1, -7])
    if coding == "graded":  # the largest a 24-bit payload carries; beyond it is an error
        big = np.array([0, -(2**23 - 1), 2**23 - 1, 5])
        with pytest.raises(InvalidData, match="24-bit"):
            sc.expand(np.array([2**40]), coding)
    trains = sc.expand(big, coding)
    assert trains.shape[0] == sc.steps(big, coding)
    np.testing.assert_array_equal(sc.decode(trains, coding), big)
    if coding == "bitwise":
        assert trains.shape[0] == 41  # 2**40 - 1 needs 40 bits and a sign bit


def test_fewer_steps_than_needed_is_an_error():
    with pytest.raises(InvalidData, match="needs 3 steps, 2 given"):
        sc.expand(np.array([3]), "ternary", 2)
    with pytest.raises(InvalidData, match="unknown spike coding"):
        sc.steps(np.array([1]), "quaternary")


@pytest.mark.parametrize("coding", ["ternary", "bitwise", "graded", "bitwise_ternary"])
def test_projection_reconstructs_the_quantised_product_exactly(coding):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (5, 3, 16))  # (batch, tokens, hidden)
    w = rng.integers(-64, 64, (8, 16)) / 32.0  # on a dyadic grid: every sum below is exact
    vth = 2.0 ** np.round(np.log2(sc.adaptive_threshold(x, k=3)))  # a power of two: V_th c is exact too
    c, _ = sc.counts(x, vth)
    y = sc.project(w, sc.expand(c, coding), vth, coding)
    np.testing.assert_array_equal(y, (vth * c) @ w.T)
    # and it is the pseudo-spiking value within rounding for any threshold
    vth = sc.adaptive_threshold(x, k=3)
    c, _ = sc.counts(x, vth)
    np.testing.assert_allclose(sc.project(w, sc.expand(c, coding), vth, coding), (vth * c) @ w.T, rtol=1e-12)


def test_w8_weights_per_row_and_group_by_hand():
    w = np.array([[1.27, -0.635, 0.0, 2.54, 1.0],
                  [0.0, 0.0, 0.0, -0.5, 0.25]])
    q, scales = sc.w8_weights(w, group=3)  # groups: channels 0-2 and 3-4
    np.testing.assert_allclose(scales, [[0.01, 0.02], [1.0, 0.5 / 127]])  # an all-zero group keeps scale 1
    np.testing.assert_array_equal(q, [[127, -64, 0, 127, 50], [0, 0, 0, -127, 64]])  # -63.5 and 63.5 round to even
    np.testing.assert_allclose(sc.w8_dequantized(w, 3), q * np.array([[0.01] * 3 + [0.02] * 2, [1.0] * 3 + [0.5 / 127] * 2]))
    big = np.random.default_rng(0).normal(size=(4, 300))
    err = np.abs(sc.w8_dequantized(big) - big)
    q, scales = sc.w8_weights(big)
    assert scales.shape == (4, 3) and q.dtype == np.int8 and np.abs(q).max() == 127
    assert np.all(err <= np.repeat(scales, 128, axis=1)[:, :300] / 2 + 1e-15)  # at most half a step


@pytest.mark.parametrize("coding", sc.CODINGS)
def test_step_events_are_the_steps_of_expand(coding):
    c = np.array([[0, 3, 7, 1], [2, 0, 5, 6]]) if coding == "binary" else np.array([[0, -3, 7, -1], [2, -8, 5, 6]])
    t = sc.steps(c, coding) + 1
    trains = sc.expand(c, coding, t)
    for step in range(t):
        np.testing.assert_array_equal(sc.step_events(c, coding, t, step), trains[step])
