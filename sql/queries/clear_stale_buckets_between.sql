-- Clear the stale marks of one municipality's buckets that start in [start, end) (a backfill recomputed them).
delete from stale_buckets
where
    municipality_id = :municipality_id
    and bucket_start >= :start
    and bucket_start < :end
