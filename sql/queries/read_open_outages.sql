-- The open outages of one municipality, each with the first reading of its sensor after the
-- outage's last one (any reading, when the sensor never reported): null while it is silent.
select
    o.id,
    o.sensor_id,
    o.started_at,
    o.last_reading_at,
    o.gap_limit_seconds,
    o.detected_at,
    (
        select min(r.observed_at)
        from readings as r
        where
            r.sensor_id = o.sensor_id
            and (o.last_reading_at is null or r.observed_at > o.last_reading_at)
    ) as returned_at
from sensor_outages as o
where
    o.municipality_id = :municipality_id
    and o.ended_at is null
