-- The readings of some sensors of one municipality in the window [start, end).
select
    sensor_id,
    observed_at,
    value,
    qc_flag
from readings
where
    municipality_id = :municipality_id
    and sensor_id in :sensor_ids
    and observed_at >= :start
    and observed_at < :end
order by sensor_id, observed_at
