-- A temporary table for one batch's readings, with the aggregate buckets each falls in and,
-- once classified, the value and batch already stored for the same (sensor, time).
create temporary table incoming_readings (
    sensor_id varchar(64) not null,
    observed_at timestamp with time zone not null,
    value double precision not null,
    hour_start timestamp with time zone not null,
    day_start timestamp with time zone not null,
    old_value double precision,
    old_batch_id bigint
)
