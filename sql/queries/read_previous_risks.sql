-- Each sensor's risk level on its latest scored day before the given day, for one municipality.
select
    p.sensor_id,
    p.risk_level as previous_risk_level
from maintenance_predictions as p
inner join (
    select sensor_id, max(day) as day
    from maintenance_predictions
    where municipality_id = :municipality_id and day < :day
    group by sensor_id
) as latest
    on p.sensor_id = latest.sensor_id and p.day = latest.day
where p.municipality_id = :municipality_id
