"""Compiled bucket statistics: one pass per resolution over readings sorted by sensor and time.

Polars computes a quantile per group with a selection over each group's values. Over all four
resolutions that is twelve selections of every reading, which is what made the aggregates cost
about four bare hourly `group_by_dynamic` runs. Here each bucket's usable values are copied once,
their moments summed, and the three quantiles found by counting the values into bins between the
bucket's minimum and maximum and selecting only inside the bins that hold a wanted rank. The
figures are exact: the values at the wanted ranks are those a sort would put there, interpolated
linearly as numpy's and Polars' "linear" quantiles do (in a few buckets in ten thousand the last
bit of the interpolation differs from Polars'); the counting only decides where to look.

The functions are compiled by numba (cached on disk after the first run) and release the GIL, so
the resolutions run side by side on threads."""

from __future__ import annotations

import numpy as np
from numba import njit

# Readings in a bucket from which on quantiles are found through bins rather than by selection.
BINNED_FROM = 32
MOST_BINS = 1 << 14


@njit(nogil=True, cache=True)
def bucket_bounds(run_ends, minute_at, minute_ordinal):  # noqa: ANN001, ANN201
    """Where each bucket begins: (starts, codes, ordinals), `starts` ending with the number of
    readings. Sensor c's readings are rows [run_ends[c-1], run_ends[c]), in time order;
    `minute_ordinal[minute_at[i]]` is reading i's bucket (the hour's UTC start in minutes, or the
    local day number of its day, Monday or first of the month)."""
    groups = 0
    start = 0
    for c in range(run_ends.shape[0]):  # count first, so that memory is the buckets', not the readings'
        last = -1
        for i in range(start, run_ends[c]):
            ordinal = minute_ordinal[minute_at[i]]
            if i == start or ordinal != last:
                groups += 1
                last = ordinal
        start = run_ends[c]
    starts = np.empty(groups + 1, np.int64)
    codes = np.empty(groups, np.int64)
    ordinals = np.empty(groups, np.int64)
    group = 0
    start = 0
    for c in range(run_ends.shape[0]):
        last = -1
        for i in range(start, run_ends[c]):
            ordinal = minute_ordinal[minute_at[i]]
            if i == start or ordinal != last:
                starts[group] = i
                codes[group] = c
                ordinals[group] = ordinal
                group += 1
                last = ordinal
        start = run_ends[c]
    starts[groups] = start
    return starts, codes, ordinals


@njit(nogil=True, cache=True)
def _select(values, low, high, k):  # noqa: ANN001, ANN202
    """Reorder values[low:high] so that values[k] is the one a sort would put there, with nothing
    larger before it and nothing smaller after it (Hoare's selection, median-of-three pivot)."""
    high -= 1
    while high > low:
        middle = (low + high) >> 1
        if values[middle] < values[low]:
            values[middle], values[low] = values[low], values[middle]
        if values[high] < values[low]:
            values[high], values[low] = values[low], values[high]
        if values[high] < values[middle]:
            values[high], values[middle] = values[middle], values[high]
        pivot = values[middle]
        i, j = low, high
        while i <= j:
            while values[i] < pivot:
                i += 1
            while values[j] > pivot:
                j -= 1
            if i <= j:
                values[i], values[j] = values[j], values[i]
                i += 1
                j -= 1
        if k <= j:
            high = j
        elif k >= i:
            low = i
        else:
            return


@njit(nogil=True, cache=True)
def _ranks(qs, n):  # noqa: ANN001, ANN202
    """For each quantile the two sorted positions its linear interpolation uses, ascending."""
    ranks = np.empty(2 * qs.shape[0], np.int64)
    for k in range(qs.shape[0]):
        below = int(np.floor(qs[k] * (n - 1)))
        ranks[2 * k] = below
        ranks[2 * k + 1] = min(below + 1, n - 1)
    return ranks


@njit(nogil=True, cache=True)
def _selected_quantiles(values, n, qs, ranks, out):  # noqa: ANN001, ANN202
    """Quantiles of a small bucket: select each wanted position in turn, the next one among the
    values after the last."""
    found = np.empty(ranks.shape[0])
    done = 0
    for i in range(ranks.shape[0]):
        if ranks[i] >= done:
            _select(values, done, n, ranks[i])
            done = ranks[i] + 1
        found[i] = values[ranks[i]]
    _interpolate(qs, n, found, out)


@njit(nogil=True, cache=True)
def _binned_quantiles(values, n, low, high, qs, ranks, out, counts, bins, candidates):  # noqa: ANN001, ANN202
    """Quantiles of a large bucket (low < high): count the values into bins of equal width, then
    select each wanted position among the values of the one bin that holds it."""
    nbins = min(counts.shape[0], max(8, n // 4))
    scale = nbins / (high - low)
    counts[:nbins] = 0
    for j in range(n):
        b = min(int((values[j] - low) * scale), nbins - 1)
        bins[j] = b
        counts[b] += 1
    found = np.empty(ranks.shape[0])
    target, before, m, done, equal = -1, 0, 0, 0, False
    for i in range(ranks.shape[0]):
        rank = ranks[i]
        if target < 0 or rank >= before + counts[target]:  # the next bin that holds a wanted rank
            if target >= 0:
                before += counts[target]
            target += 1
            while before + counts[target] <= rank:
                before += counts[target]
                target += 1
            m, done, smallest, largest = 0, 0, np.inf, -np.inf
            for j in range(n):
                if bins[j] == target:
                    candidates[m] = values[j]
                    smallest = min(smallest, values[j])
                    largest = max(largest, values[j])
                    m += 1
            equal = smallest == largest  # readings at a sensor's resolution often share a value
        if equal:
            found[i] = candidates[0]
            continue
        at = rank - before
        if at >= done:
            _select(candidates, done, m, at)
            done = at + 1
        found[i] = candidates[at]
    _interpolate(qs, n, found, out)


@njit(nogil=True, cache=True)
def _interpolate(qs, n, found, out):  # noqa: ANN001, ANN202
    for k in range(qs.shape[0]):
        at = qs[k] * (n - 1)
        below = found[2 * k]
        out[k] = below + (at - np.floor(at)) * (found[2 * k + 1] - below)


@njit(nogil=True, cache=True)
def bucket_statistics(starts, value, qc_flag, qs, counts, moments, quantiles):  # noqa: ANN001, ANN201
    """Fill, for each bucket [starts[g], starts[g+1]): counts (readings, excluded, missing),
    moments (mean, min, max, sample std) and `qs` quantiles of its usable values.

    A reading is excluded when QC failed it (4) or found it missing (9) or its value is not
    finite; it is counted, and missing when flagged 9. Statistics of a bucket without usable
    values, and the std of one with a single value, stay NaN."""
    groups = starts.shape[0] - 1
    widest = 0
    for g in range(groups):
        widest = max(widest, starts[g + 1] - starts[g])
    kept = np.empty(widest)
    candidates = np.empty(widest)
    bins = np.empty(widest, np.int64)
    bin_counts = np.empty(MOST_BINS, np.int64)
    for g in range(groups):
        start, end = starts[g], starts[g + 1]
        n, excluded, missing = 0, 0, 0
        total, low, high = 0.0, np.inf, -np.inf
        for j in range(start, end):
            flag = qc_flag[j]
            v = value[j]
            if flag == 4 or flag == 9 or not np.isfinite(v):
                excluded += 1
            else:
                kept[n] = v
                n += 1
                total += v
                low = min(low, v)
                high = max(high, v)
            if flag == 9:
                missing += 1
        counts[g, 0] = end - start
        counts[g, 1] = excluded
        counts[g, 2] = missing
        if n == 0:
            continue
        mean = total / n
        moments[g, 0] = mean
        moments[g, 1] = low
        moments[g, 2] = high
        if n > 1:
            squares = 0.0
            for j in range(n):
                squares += (kept[j] - mean) ** 2
            moments[g, 3] = np.sqrt(squares / (n - 1))
        if low == high:
            quantiles[g, :] = low
        elif n >= BINNED_FROM and np.isfinite(MOST_BINS / (high - low)):  # bins need a finite width
            ranks = _ranks(qs, n)
            _binned_quantiles(kept, n, low, high, qs, ranks, quantiles[g], bin_counts, bins, candidates)
        else:
            _selected_quantiles(kept, n, qs, _ranks(qs, n), quantiles[g])


@njit(nogil=True, cache=True)
def in_time_order(run_ends, minute_at):  # noqa: ANN001, ANN201
    """Whether each sensor's readings are in time order."""
    start = 0
    for c in range(run_ends.shape[0]):
        for i in range(start + 1, run_ends[c]):
            if minute_at[i] < minute_at[i - 1]:
                return False
        start = run_ends[c]
    return True
