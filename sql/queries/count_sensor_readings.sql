-- How many readings each sensor of one municipality has in the window [start, end) (sensors with none are left out).
select
    sensor_id,
    count(*) as count_readings
from readings
where
    sensor_id in (select id from sensors where municipality_id = :municipality_id)
    and municipality_id = :municipality_id
    and observed_at >= :start
    and observed_at < :end
group by sensor_id
order by sensor_id
