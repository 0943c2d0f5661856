-- One page of a municipality's anomalies observed in [start, end), after the key (after_at, after_id).
select
    id as anomaly_id,
    station_id,
    sensor_id,
    observed_at,
    method,
    value,
    score,
    severity,
    "window" as detector_window,
    explanation,
    incident_id,
    detected_at
from anomalies
where
    municipality_id = :municipality_id
    and observed_at >= :start
    and observed_at < :end
    and (observed_at > :after_at or (observed_at = :after_at and id > :after_id))
order by observed_at, id
limit :page_rows
