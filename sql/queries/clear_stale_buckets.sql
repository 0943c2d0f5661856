-- Clear the stale marks of one municipality's buckets that start before the given end (now recomputed).
delete from stale_buckets
where
    municipality_id = :municipality_id
    and bucket_start < :end
