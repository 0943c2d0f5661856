-- Every sensor of one municipality with what the analytics stages need to know about it.
select
    id as sensor_id,
    station_id,
    parameter,
    unit,
    kind,
    valid_min,
    valid_max,
    interval_seconds,
    installed_at,
    last_calibrated_at,
    case when active then 1 else 0 end as is_active
from sensors
where municipality_id = :municipality_id
