-- Make the incoming value current where it differs; the QC stage judges the new value again.
update readings
set
    value = incoming_readings.value,
    qc_flag = 2,
    batch_id = :batch_id
from incoming_readings
where
    incoming_readings.sensor_id = readings.sensor_id
    and incoming_readings.observed_at = readings.observed_at
    and incoming_readings.old_value <> incoming_readings.value
