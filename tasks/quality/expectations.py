"""Great Expectations behind one call: run a suite kept as JSON on a whole frame, get failing rows.

GX is imported lazily (it costs about 2.5 s) and its ephemeral context is built once per process.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import polars as pl

SUITES_DIR = Path(__file__).resolve().parent / "suites"
ROW_NUMBER = "row_number"
# Result keys that list every failing row or value (COMPLETE format); dropped from the kept result,
# whose partial lists (20 entries, as in SUMMARY) are what Data Docs show anyway.
FULL_LISTS = ("unexpected_list", "unexpected_index_list", "unexpected_index_query", "unexpected_rows")
FAILURES_SCHEMA = {ROW_NUMBER: pl.Int64, "check": pl.String}

# GX batches and validators are not documented as thread-safe; Prefect's thread pool may run
# several municipalities at once in one process, so validations take turns.
_LOCK = threading.Lock()


class ExpectationCrashed(RuntimeError):
    """An expectation raised instead of judging the data: a bug in the suite or the frame."""


class FrameRejected(RuntimeError):
    """A table-level expectation (columns, types) failed: the frame, not a row, is wrong."""


@dataclass(frozen=True)
class SuiteOutcome:
    """Which rows failed which check, plus the figures GX reports."""

    failures: pl.DataFrame  # row_number, check (one row per failing row and expectation)
    statistics: dict
    expectations: list[dict]  # per expectation: type, column(s), check, unexpected_count
    seconds: float
    # The GX validation result as JSON, SUMMARY-sized (see `summary_result`), for Data Docs.
    gx_result: dict = field(default_factory=dict)


def suite_path(name: str) -> Path:
    return SUITES_DIR / f"{name}.json"


@lru_cache(maxsize=8)
def _suite(name: str):
    import great_expectations as gx

    return gx.ExpectationSuite(**json.loads(suite_path(name).read_text()))


@lru_cache(maxsize=1)
def _batch_definition():
    """The whole-dataframe batch definition of an ephemeral context, progress bars off."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    # GX announces the temporary folder of its (unused) docs site at INFO on every process start
    # (that module sets its own logger to INFO at import).
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    asset = context.data_sources.add_pandas("waterline").add_dataframe_asset("frame")
    return asset.add_batch_definition_whole_dataframe("whole_frame")


def run_suite(frame: pl.DataFrame, suite_name: str, parameters: dict | None = None) -> SuiteOutcome:
    """Validate `frame` (which must have a unique `row_number` column) against a stored suite.

    Runs with result_format COMPLETE so every failing row of every expectation is reported.
    Raises `ExpectationCrashed` if any expectation raised an exception, and `FrameRejected` if an
    expectation about the whole table (columns, types) failed, since no row could be blamed.
    """
    suite = _suite(suite_name)
    batch_definition = _batch_definition()  # the first call of a process imports GX (~2.5 s)
    started = time.perf_counter()
    with _LOCK:
        batch = batch_definition.get_batch(batch_parameters={"dataframe": frame.to_pandas()})
        result = batch.validate(
            suite,
            result_format={
                "result_format": "COMPLETE",
                "unexpected_index_column_names": [ROW_NUMBER],
                "return_unexpected_index_query": False,
            },
            expectation_parameters=parameters or {},
        )
    parts = []
    summaries = []
    for item in result.results:
        config = item.expectation_config
        _raise_if_crashed(config.type, item.exception_info)
        check = config.meta.get("check", config.type)
        if not item.success and "unexpected_index_list" not in item.result:
            raise FrameRejected(
                f"expectation {config.type} ({check}) failed on the whole frame: "
                f"{item.result.get('observed_value')!r}"
            )
        failing = _failing_row_numbers(item.result)
        summaries.append(
            {
                "type": config.type,
                "column": _columns(config.kwargs),
                "check": check,
                "success": bool(item.success),
                "unexpected_count": int(item.result.get("unexpected_count") or 0),
            }
        )
        if failing.height:
            parts.append(failing.with_columns(check=pl.lit(check)))
    failures = pl.concat(parts) if parts else pl.DataFrame(schema=FAILURES_SCHEMA)
    statistics = {k: _plain(v) for k, v in result.describe_dict()["statistics"].items()}
    return SuiteOutcome(
        failures=failures.cast(FAILURES_SCHEMA),
        statistics=statistics,
        expectations=summaries,
        seconds=round(time.perf_counter() - started, 4),
        gx_result=summary_result(result),
    )


def summary_result(result: Any) -> dict:
    """A GX ExpectationSuiteValidationResult as JSON without its full unexpected lists.

    COMPLETE results list every failing row (millions of entries for a bad file); the copy keeps
    the counts, percentages and partial lists, a few kilobytes however large the frame.
    """
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )

    items = [
        ExpectationValidationResult(
            success=item.success,
            expectation_config=item.expectation_config,
            result={k: v for k, v in item.result.items() if k not in FULL_LISTS},
            meta=item.meta,
            exception_info=item.exception_info,
        )
        for item in result.results
    ]
    return ExpectationSuiteValidationResult(
        success=result.success,
        results=items,
        suite_name=result.suite_name,
        suite_parameters=result.suite_parameters,
        statistics=result.statistics,
        meta=result.meta,
        batch_id=result.batch_id,
        id=result.id,
    ).to_json_dict()


def _failing_row_numbers(result: dict) -> pl.DataFrame:
    """The row numbers GX lists as unexpected (each entry is a dict with the index column)."""
    listed = result.get("unexpected_index_list") or []
    if not listed:
        return pl.DataFrame(schema={ROW_NUMBER: pl.Int64})
    return pl.DataFrame(
        {ROW_NUMBER: pl.Series([entry[ROW_NUMBER] for entry in listed], dtype=pl.Int64)}
    )


def _raise_if_crashed(expectation_type: str, info: Any) -> None:
    """`exception_info` is one dict, or a dict of them keyed by metric; any raised -> error."""
    if not info:
        return
    infos = [info] if "raised_exception" in info else list(info.values())
    for entry in infos:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            message = (entry.get("exception_message") or "no message").splitlines()[0]
            raise ExpectationCrashed(f"expectation {expectation_type} crashed: {message}")


def _columns(kwargs: dict) -> str | list[str] | None:
    if "column" in kwargs:
        return kwargs["column"]
    if "column_list" in kwargs:
        return list(kwargs["column_list"])
    if "column_A" in kwargs:
        return [kwargs["column_A"], kwargs["column_B"]]
    return None


def _plain(value: Any) -> Any:
    """numpy scalars to plain Python numbers (the statistics go to a JSON column)."""
    return value.item() if hasattr(value, "item") else value


def warm_up() -> None:
    """Import GX and build its context now (about 2.5 s, once per process), not in the first batch."""
    _batch_definition()
