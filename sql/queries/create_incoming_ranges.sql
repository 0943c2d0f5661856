-- A temporary table of the time span each sensor covers in one chunk of a batch.
create temporary table incoming_ranges (
    sensor_id varchar(64) not null,
    first_at timestamp with time zone not null,
    last_at timestamp with time zone not null
)
