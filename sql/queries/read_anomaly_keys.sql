-- The keys of the anomalies of one municipality observed in the window [start, end).
select
    sensor_id,
    observed_at,
    method
from anomalies
where
    municipality_id = :municipality_id
    and observed_at >= :start
    and observed_at < :end
