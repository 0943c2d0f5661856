-- Every statistic of one municipality's aggregates whose buckets start in the window [start, end).
select
    sensor_id,
    resolution,
    bucket_start,
    count_readings,
    count_excluded,
    count_expected,
    coverage_pct,
    value_mean,
    value_min,
    value_max,
    value_std,
    value_median,
    value_p95,
    value_p99
from aggregates
where
    municipality_id = :municipality_id
    and bucket_start >= :start
    and bucket_start < :end
