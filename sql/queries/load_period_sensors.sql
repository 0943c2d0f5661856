-- Every sensor of one municipality with its station's name, for a period's compliance report.
select
    sensors.id as sensor_id,
    sensors.station_id,
    stations.name as station,
    sensors.parameter,
    sensors.unit,
    sensors.kind,
    sensors.interval_seconds,
    sensors.installed_at
from sensors
inner join stations
    on sensors.station_id = stations.id
where
    sensors.municipality_id = :municipality_id
    and stations.municipality_id = :municipality_id
order by sensors.id
