-- Insert the incoming readings of a (sensor, time) not stored yet; qc_flag 2 is "not evaluated".
insert into readings (sensor_id, observed_at, municipality_id, value, qc_flag, batch_id)
select
    sensor_id,
    observed_at,
    :municipality_id as municipality_id,
    value,
    2 as qc_flag,
    :batch_id as batch_id
from incoming_readings
where old_value is null
