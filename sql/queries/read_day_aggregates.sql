-- The aggregates of one municipality whose buckets start in the window [start, end).
select
    sensor_id,
    resolution,
    bucket_start,
    count_readings,
    count_excluded,
    value_mean,
    value_min,
    value_max,
    value_std
from aggregates
where
    municipality_id = :municipality_id
    and bucket_start >= :start
    and bucket_start < :end
