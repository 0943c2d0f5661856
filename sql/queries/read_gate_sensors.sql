-- The sensors of one municipality with what the ingest gate checks a reading against.
select
    id as sensor_id,
    parameter,
    valid_min,
    valid_max,
    installed_at
from sensors
where municipality_id = :municipality_id
