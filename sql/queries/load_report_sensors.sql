-- Every sensor of one municipality, as listed in its daily report.
select
    id as sensor_id,
    station_id,
    parameter,
    unit,
    kind,
    interval_seconds,
    case when active then 1 else 0 end as is_active
from sensors
where municipality_id = :municipality_id
order by id
