"""The retry schedule and what one attempt's outcome does to its delivery (pure functions)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

# Attempt n (1-based) is sent RETRY_SCHEDULE_SECONDS[n - 1] after attempt n - 1 failed (Svix's
# schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h); after the 8th failure: dead.
RETRY_SCHEDULE_SECONDS = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_ATTEMPTS = len(RETRY_SCHEDULE_SECONDS)
JITTER = 0.10
MAX_RETRY_AFTER_SECONDS = 24 * 3600
THROTTLE_STATUSES = (429, 503)


@dataclass(frozen=True)
class AttemptResult:
    """What happened when one delivery was sent once."""

    delivery_id: int
    attempted_at: datetime
    status_code: int | None = None
    latency_ms: float | None = None
    response_body: str | None = None
    error: str | None = None  # a short sentence when there was no HTTP response
    retry_after_seconds: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


def retry_delay_seconds(attempts_made: int, rng: random.Random | None = None) -> float | None:
    """Seconds to wait after `attempts_made` failures (+-10 % jitter); None when exhausted."""
    if attempts_made >= MAX_ATTEMPTS:
        return None
    base = RETRY_SCHEDULE_SECONDS[attempts_made]
    return base * (rng or random).uniform(1 - JITTER, 1 + JITTER)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped at one day."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def describe_failure(result: AttemptResult) -> str | None:
    """The delivery's `last_error`: None on success, else a short sentence."""
    if result.succeeded:
        return None
    if result.error:
        return result.error
    if result.gone:
        return "the endpoint answered 410 Gone; the subscription was disabled"
    if result.status_code is not None and 300 <= result.status_code < 400:
        return f"the endpoint answered {result.status_code} (redirects are not followed)"
    return f"the endpoint answered {result.status_code}"


def next_delivery_state(
    attempts_before: int, result: AttemptResult, rng: random.Random | None = None
) -> dict:
    """The delivery's new status, attempt_count, next_attempt_at and last_* after `result`.

    Only 2xx succeeds. Any other outcome schedules the next attempt from the schedule, waiting at
    least Retry-After on 429/503, until the schedule is exhausted and the delivery is dead.
    """
    attempts = attempts_before + 1
    state = {
        "attempt_count": attempts,
        "last_status_code": result.status_code,
        "last_error": describe_failure(result),
        "updated_at": result.attempted_at,
    }
    if result.succeeded:
        return {**state, "status": "succeeded", "next_attempt_at": None}
    delay = retry_delay_seconds(attempts, rng)
    if delay is None:
        return {**state, "status": "dead", "next_attempt_at": None}
    if result.status_code in THROTTLE_STATUSES and result.retry_after_seconds is not None:
        delay = max(delay, result.retry_after_seconds)
    return {
        **state,
        "status": "pending",
        "next_attempt_at": result.attempted_at + timedelta(seconds=delay),
    }
