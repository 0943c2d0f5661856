-- Mark stale every (sensor, hour or day) bucket that a new or changed reading reaches, once the
-- nightly run has aggregated that sensor's day or a later one: a bucket that had no reading
-- before (a gap, a day the sensor was silent) is marked too, so late data creates it.
insert into stale_buckets (sensor_id, resolution, bucket_start, municipality_id, batch_id, marked_at)
with changed as (
    select
        sensor_id,
        hour_start,
        day_start
    from incoming_readings
    where old_value is null or old_value <> value
),

buckets as (
    select distinct
        sensor_id,
        'hour' as resolution,
        hour_start as bucket_start,
        day_start
    from changed
    union
    select distinct
        sensor_id,
        'day' as resolution,
        day_start as bucket_start,
        day_start
    from changed
),

final as (
    select
        buckets.sensor_id,
        buckets.resolution,
        buckets.bucket_start
    from buckets
    where exists (
        select 1
        from aggregates
        where
            aggregates.sensor_id = buckets.sensor_id
            and aggregates.resolution = 'day'
            and aggregates.bucket_start >= buckets.day_start
    )
)

select
    sensor_id,
    resolution,
    bucket_start,
    :municipality_id as municipality_id,
    :batch_id as batch_id,
    :marked_at as marked_at
from final
where true
on conflict (sensor_id, resolution, bucket_start) do update
set
    batch_id = excluded.batch_id,
    marked_at = excluded.marked_at
