-- One municipality's aggregates of one resolution (hour or day) whose buckets start in [start, end).
select
    sensor_id,
    bucket_start,
    count_readings,
    count_excluded,
    value_mean,
    value_min,
    value_max
from aggregates
where
    municipality_id = :municipality_id
    and resolution = :resolution
    and bucket_start >= :start
    and bucket_start < :end
