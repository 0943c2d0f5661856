-- Every anomaly of one municipality observed in the window [start, end), whatever its incident.
select
    sensor_id,
    station_id,
    method,
    observed_at,
    score,
    severity,
    explanation
from anomalies
where
    municipality_id = :municipality_id
    and observed_at >= :start
    and observed_at < :end
