-- The readings of one municipality (by its sensors: a key range scan each) in the window [start, end), every sensor.
select
    sensor_id,
    observed_at,
    value,
    qc_flag
from readings
where
    sensor_id in (select id from sensors where municipality_id = :municipality_id)
    and municipality_id = :municipality_id
    and observed_at >= :start
    and observed_at < :end
order by sensor_id, observed_at
