-- One municipality's aggregates of one resolution whose buckets start in [start, end), each with
-- its sensor's parameter, unit and station name (what an insight sentence names).
select
    aggregates.sensor_id,
    aggregates.resolution,
    aggregates.bucket_start,
    aggregates.value_mean,
    sensors.parameter,
    sensors.unit,
    stations.name as station_name
from aggregates
inner join sensors on aggregates.sensor_id = sensors.id
inner join stations on sensors.station_id = stations.id
where
    aggregates.municipality_id = :municipality_id
    and aggregates.resolution = :resolution
    and aggregates.bucket_start >= :start
    and aggregates.bucket_start < :end
