-- Per sensor of a chunk, the start of its latest aggregated bucket: only readings before its end
-- can land in a bucket already aggregated (arrive late).
select
    aggregates.sensor_id,
    max(aggregates.bucket_start) as last_bucket_start
from incoming_ranges
inner join aggregates
    on incoming_ranges.sensor_id = aggregates.sensor_id
group by aggregates.sensor_id
