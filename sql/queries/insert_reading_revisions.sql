-- Keep the stored value of every incoming reading whose value differs, with both batches.
insert into reading_revisions (
    municipality_id,
    sensor_id,
    observed_at,
    old_value,
    new_value,
    old_batch_id,
    new_batch_id,
    revised_at
)
select
    :municipality_id as municipality_id,
    sensor_id,
    observed_at,
    old_value,
    value as new_value,
    old_batch_id,
    :batch_id as new_batch_id,
    :revised_at as revised_at
from incoming_readings
where old_value <> value
