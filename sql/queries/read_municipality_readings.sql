-- The readings of one municipality in the window [start, end), every sensor.
select
    sensor_id,
    observed_at,
    value,
    qc_flag
from readings
where
    municipality_id = :municipality_id
    and observed_at >= :start
    and observed_at < :end
