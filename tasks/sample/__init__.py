"""Seeded synthetic sample data for demos, tests and benchmarks (`waterline sample`)."""

from tasks.sample.generate import (
    MunicipalitySample,
    SampleSummary,
    generate_sample,
    plan_for_readings,
)

__all__ = ["MunicipalitySample", "SampleSummary", "generate_sample", "plan_for_readings"]
