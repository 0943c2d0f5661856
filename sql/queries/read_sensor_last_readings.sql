-- Each sensor of one municipality with the time of its newest reading (null: none yet); one
-- backward index scan of the readings key per sensor.
select
    s.id as sensor_id,
    (
        select max(r.observed_at)
        from readings as r
        where r.sensor_id = s.id
    ) as last_reading_at
from sensors as s
where s.municipality_id = :municipality_id
