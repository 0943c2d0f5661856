-- One sensor's readings in [start, end), both the sensor and the rows held to one municipality.
select
    observed_at,
    value,
    qc_flag
from readings
where
    municipality_id = :municipality_id
    and sensor_id = :sensor_id
    and observed_at >= :start
    and observed_at < :end
order by observed_at
