-- The readings already stored within the time span of each sensor of a chunk (an index range
-- scan per sensor: none at all for new data, which then goes straight into readings).
select
    readings.sensor_id,
    readings.observed_at,
    readings.value as old_value,
    readings.batch_id as old_batch_id
from incoming_ranges
inner join readings
    on
        incoming_ranges.sensor_id = readings.sensor_id
        and readings.observed_at between incoming_ranges.first_at and incoming_ranges.last_at
