-- The daily aggregates of one municipality whose bucket is its local day (bucket_start = window_start).
select
    sensor_id,
    count_readings,
    count_excluded,
    value_mean,
    value_min,
    value_max,
    value_std
from aggregates
where
    municipality_id = :municipality_id
    and resolution = 'day'
    and bucket_start = :window_start
