-- The latest time a day aggregate of one municipality's month [start, end) was computed, or of
-- its lab sensors in the 24 hours after it [end, followed_until), where a confirmation sample
-- of the month's last samples may land: late or revised readings refresh their buckets, so a
-- later time than a report's means new data.
select max(aggregates.computed_at) as computed_at
from aggregates
inner join sensors on aggregates.sensor_id = sensors.id
where
    aggregates.municipality_id = :municipality_id
    and sensors.municipality_id = :municipality_id
    and aggregates.resolution = 'day'
    and (
        (aggregates.bucket_start >= :start and aggregates.bucket_start < :end)
        or (
            sensors.kind = 'lab'
            and aggregates.bucket_start >= :end
            and aggregates.bucket_start < :followed_until
        )
    )
