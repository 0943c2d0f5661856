-- What one municipality's ingest received during its local day: batches and their row counts.
with day_batches as (
    select
        rows_total,
        rows_loaded,
        rows_quarantined,
        status
    from ingest_batches
    where
        municipality_id = :municipality_id
        and started_at >= :window_start
        and started_at < :window_end
),

final as (
    select
        count(*) as batches_received,
        coalesce(sum(case when status = 'failed' then 1 else 0 end), 0) as batches_failed,
        coalesce(sum(rows_total), 0) as rows_received,
        coalesce(sum(rows_loaded), 0) as rows_loaded,
        coalesce(sum(rows_quarantined), 0) as rows_quarantined
    from day_batches
)

select * from final
