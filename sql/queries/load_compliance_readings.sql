-- The readings of one municipality (by its sensors: a key range scan each) in its local day [window_start, window_end), with their
-- sensor parameter and kind (online or lab), for the daily compliance statistics.
with day_readings as (
    select
        sensor_id,
        value,
        qc_flag
    from readings
    where
        sensor_id in (select id from sensors where municipality_id = :municipality_id)
        and municipality_id = :municipality_id
        and observed_at >= :window_start
        and observed_at < :window_end
),

municipality_sensors as (
    select
        id as sensor_id,
        parameter,
        kind
    from sensors
    where municipality_id = :municipality_id
),

final as (
    select
        municipality_sensors.parameter,
        municipality_sensors.kind,
        day_readings.value,
        day_readings.qc_flag
    from day_readings
    inner join municipality_sensors
        on day_readings.sensor_id = municipality_sensors.sensor_id
)

select * from final
