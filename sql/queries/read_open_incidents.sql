-- The incidents of one municipality that are not resolved yet.
select
    id,
    station_id,
    sensor_id,
    kind,
    severity,
    status,
    summary,
    first_observed_at,
    last_observed_at,
    anomaly_count
from incidents
where
    municipality_id = :municipality_id
    and status <> 'resolved'
