-- How many new or changed incoming readings fall in a bucket this batch marked stale.
select count(*) as count_late
from incoming_readings
where
    (old_value is null or old_value <> value)
    and exists (
        select 1
        from stale_buckets
        where
            stale_buckets.batch_id = :batch_id
            and stale_buckets.sensor_id = incoming_readings.sensor_id
            and (
                (stale_buckets.resolution = 'hour' and stale_buckets.bucket_start = incoming_readings.hour_start)
                or (stale_buckets.resolution = 'day' and stale_buckets.bucket_start = incoming_readings.day_start)
            )
    )
