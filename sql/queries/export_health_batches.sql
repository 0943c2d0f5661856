-- A municipality's ingest batches started in [start, end).
select
    started_at,
    status,
    rows_total,
    rows_loaded,
    rows_quarantined
from ingest_batches
where
    municipality_id = :municipality_id
    and started_at >= :start
    and started_at < :end
