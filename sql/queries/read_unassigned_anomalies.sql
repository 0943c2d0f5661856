-- Anomalies of one municipality in the window [start, end) that belong to no incident yet.
select
    id,
    sensor_id,
    station_id,
    method,
    observed_at,
    value,
    score,
    severity,
    explanation
from anomalies
where
    municipality_id = :municipality_id
    and incident_id is null
    and observed_at >= :start
    and observed_at < :end
