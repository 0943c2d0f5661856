"""Idempotent upserts: write only the rows that are new or whose values changed."""

from __future__ import annotations

import polars as pl

RELATIVE_TOLERANCE = 1e-9


def _same(name: str, dtype: pl.DataType) -> pl.Expr:
    new, old = pl.col(name), pl.col(f"{name}_old")
    if dtype.is_float():
        scale = pl.max_horizontal(new.abs(), old.abs(), pl.lit(1.0))
        close = ((new - old).abs() <= RELATIVE_TOLERANCE * scale).fill_null(False)
        return (new.is_null() & old.is_null()) | close
    return new.eq_missing(old)


def rows_to_write(
    fresh: pl.DataFrame, stored: pl.DataFrame, key: list[str], compare: list[str]
) -> pl.DataFrame:
    """The rows of `fresh` whose key is not in `stored`, or whose `compare` columns differ.

    Floats are compared with a relative tolerance of 1e-9, so a value that went through the
    database and back counts as unchanged; a rerun on unchanged data therefore writes nothing.
    """
    if stored.is_empty():
        return fresh
    old = stored.select(
        *[pl.col(k).cast(fresh.schema[k]) for k in key],
        *[pl.col(c).cast(fresh.schema[c]).alias(f"{c}_old") for c in compare],
    )
    same = pl.all_horizontal(_same(c, fresh.schema[c]) for c in compare)
    return fresh.join(old, on=key, how="left", nulls_equal=True).filter(~same).select(fresh.columns)
