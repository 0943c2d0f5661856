-- One page of a municipality's incidents that overlap [start, end), ids above after_id.
select
    id as incident_id,
    station_id,
    sensor_id,
    kind,
    severity,
    status,
    summary,
    first_observed_at,
    last_observed_at,
    anomaly_count,
    opened_at,
    updated_at,
    resolved_at,
    label,
    labelled_by,
    note
from incidents
where
    municipality_id = :municipality_id
    and first_observed_at < :end
    and last_observed_at >= :start
    and id > :after_id
order by id
limit :page_rows
