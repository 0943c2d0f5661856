-- Incidents of one municipality opened during its local day or still open at the end of it.
select
    id as incident_id,
    station_id,
    sensor_id,
    kind,
    severity,
    summary,
    first_observed_at,
    opened_at,
    case when resolved_at < :window_end then resolved_at end as resolved_at,
    case when opened_at >= :window_start then 1 else 0 end as is_opened_that_day,
    case when resolved_at is null or resolved_at >= :window_end then 1 else 0 end as is_open_at_end
from incidents
where
    municipality_id = :municipality_id
    and opened_at < :window_end
    and (
        opened_at >= :window_start
        or resolved_at is null
        or resolved_at >= :window_end
    )
order by opened_at, id
