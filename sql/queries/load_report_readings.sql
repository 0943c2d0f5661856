-- The readings of one municipality in its local day [window_start, window_end).
select
    sensor_id,
    observed_at,
    value,
    qc_flag
from readings
where
    municipality_id = :municipality_id
    and observed_at >= :window_start
    and observed_at < :window_end
