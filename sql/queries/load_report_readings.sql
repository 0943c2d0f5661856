-- The readings of one municipality (by its sensors: a key range scan each) in its local day [window_start, window_end).
select
    sensor_id,
    observed_at,
    value,
    qc_flag
from readings
where
    sensor_id in (select id from sensors where municipality_id = :municipality_id)
    and municipality_id = :municipality_id
    and observed_at >= :window_start
    and observed_at < :window_end
