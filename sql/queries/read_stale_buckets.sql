-- The stale aggregate buckets of one municipality that start before the given end.
select
    sensor_id,
    resolution,
    bucket_start
from stale_buckets
where
    municipality_id = :municipality_id
    and bucket_start < :end
