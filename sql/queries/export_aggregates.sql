-- One sensor's aggregates of one resolution whose buckets start in [start, end), in time order,
-- both the sensor and the rows held to one municipality.
select
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
    and sensor_id = :sensor_id
    and resolution = :resolution
    and bucket_start >= :start
    and bucket_start < :end
order by bucket_start
