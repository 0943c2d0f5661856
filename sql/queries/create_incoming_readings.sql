-- A temporary table for the readings of a chunk that revise a stored value or may land in an
-- aggregated bucket, with their buckets and the value and batch stored before (null: new).
create temporary table incoming_readings (
    sensor_id varchar(64) not null,
    observed_at timestamp with time zone not null,
    value double precision not null,
    hour_start timestamp with time zone not null,
    day_start timestamp with time zone not null,
    old_value double precision,
    old_batch_id bigint
)
