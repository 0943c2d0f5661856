-- How many readings each sensor of a municipality has per local day, from the daily aggregates.
select
    sensor_id,
    bucket_start,
    count_readings,
    count_excluded
from aggregates
where
    municipality_id = :municipality_id
    and resolution = 'day'
    and bucket_start >= :start
    and bucket_start < :end
