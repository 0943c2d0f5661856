"""The compiled bucket statistics against numpy on the same values, bucket by bucket."""

import numpy as np
import pytest

from tasks.analytics.kernels import BINNED_FROM, bucket_statistics

LEVELS = np.array([0.5, 0.95, 0.99])


def _run(buckets: list[np.ndarray], flags: list[np.ndarray] | None = None):
    value = np.concatenate(buckets)
    qc_flag = np.concatenate(flags) if flags else np.full(value.shape[0], 1, np.int16)
    starts = np.cumsum([0, *[len(b) for b in buckets]]).astype(np.int64)
    counts = np.zeros((len(buckets), 3), np.int64)
    moments = np.full((len(buckets), 4), np.nan)
    quantiles = np.full((len(buckets), 3), np.nan)
    bucket_statistics(starts, value, qc_flag, LEVELS, counts, moments, quantiles)
    return counts, moments, quantiles


@pytest.mark.parametrize(
    "make",
    [
        lambda rng, n: rng.normal(7.2, 0.3, n),  # continuous: every value its own
        lambda rng, n: np.round(rng.normal(7.2, 0.3, n), 2),  # a sensor's resolution: many ties
        lambda rng, n: np.where(rng.random(n) < 0.01, 1e4, np.round(rng.normal(0.2, 0.01, n), 3)),  # spikes
        lambda rng, n: rng.lognormal(0, 2, n),  # skewed
        lambda rng, n: np.repeat(rng.normal(0, 1, max(1, n // 50)), 50)[:n],  # long runs of one value
    ],
    ids=["continuous", "ties", "spikes", "skewed", "runs"],
)
def test_quantiles_and_moments_equal_numpy_for_small_and_large_buckets(make):
    rng = np.random.default_rng(11)
    sizes = [1, 2, 3, BINNED_FROM - 1, BINNED_FROM, 60, 1_440, 10_080, 44_640]
    buckets = [make(rng, n) for n in sizes]

    counts, moments, quantiles = _run(buckets)

    for g, values in enumerate(buckets):
        assert counts[g].tolist() == [len(values), 0, 0]
        expected = np.percentile(values, LEVELS * 100)  # numpy's linear interpolation
        np.testing.assert_allclose(quantiles[g], expected, rtol=1e-12, atol=0)
        assert moments[g, 0] == pytest.approx(values.mean(), rel=1e-12)
        assert (moments[g, 1], moments[g, 2]) == (values.min(), values.max())
        if len(values) > 1:
            assert moments[g, 3] == pytest.approx(values.std(ddof=1), rel=1e-9, abs=1e-15)
        else:
            assert np.isnan(moments[g, 3])


def test_failed_missing_and_non_finite_readings_are_counted_but_enter_no_statistic():
    rng = np.random.default_rng(3)
    good = rng.normal(10, 2, 500)
    value = np.concatenate([good, [1e6, -1e6, np.nan, np.inf, -np.inf]])
    flags = np.concatenate([np.full(500, 1, np.int16), np.array([4, 9, 1, 1, 2], np.int16)])

    counts, moments, quantiles = _run([value], [flags])

    assert counts[0].tolist() == [505, 5, 1]
    np.testing.assert_allclose(quantiles[0], np.percentile(good, LEVELS * 100), rtol=1e-12)
    assert (moments[0, 1], moments[0, 2]) == (good.min(), good.max())


def test_a_bucket_without_usable_readings_has_counts_and_no_statistics():
    counts, moments, quantiles = _run([np.array([np.nan, 5.0])], [np.array([1, 4], np.int16)])

    assert counts[0].tolist() == [2, 2, 0]
    assert np.isnan(moments[0]).all() and np.isnan(quantiles[0]).all()


def test_values_too_close_for_bins_of_finite_width_are_still_selected_exactly():
    values = np.array([5e-324 * k for k in range(64)])  # subnormal: max - min is tiny

    _, _, quantiles = _run([values])

    # Subnormal arithmetic rounds numpy's interpolation differently; the ranks are what matter.
    np.testing.assert_allclose(quantiles[0], np.percentile(values, LEVELS * 100), rtol=0.05)
