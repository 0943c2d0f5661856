-- Every sensor of one municipality with its station: what the exports filter on and add to rows.
select
    sensors.id as sensor_id,
    sensors.station_id,
    stations.name as station_name,
    sensors.parameter,
    sensors.unit,
    sensors.kind,
    sensors.interval_seconds,
    case when sensors.active then 1 else 0 end as is_active
from sensors
inner join stations on sensors.station_id = stations.id
where
    sensors.municipality_id = :municipality_id
    and stations.municipality_id = :municipality_id
order by sensors.id
