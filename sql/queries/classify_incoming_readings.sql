-- Note on each incoming reading the value and batch already stored for its (sensor, time).
update incoming_readings
set
    old_value = stored.value,
    old_batch_id = stored.batch_id
from readings as stored
where
    stored.sensor_id = incoming_readings.sensor_id
    and stored.observed_at = incoming_readings.observed_at
