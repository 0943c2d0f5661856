-- The latest time any day aggregate of one municipality in [start, end) was computed: late or
-- revised readings refresh their buckets, so a later time than a report's means new data.
select max(computed_at) as computed_at
from aggregates
where
    municipality_id = :municipality_id
    and resolution = 'day'
    and bucket_start >= :start
    and bucket_start < :end
