-- One flow sensor's readings in [start, end) and the first one after (to integrate up to it),
-- leaving out QC failed and missing readings.
with inside as (
    select
        observed_at,
        value,
        qc_flag
    from readings
    where
        municipality_id = :municipality_id
        and sensor_id = :sensor_id
        and observed_at >= :start
        and observed_at < :end
        and qc_flag not in (4, 9)
),

following as (
    select
        observed_at,
        value,
        qc_flag
    from readings
    where
        municipality_id = :municipality_id
        and sensor_id = :sensor_id
        and observed_at >= :end
        and observed_at <= :lookahead
        and qc_flag not in (4, 9)
    order by observed_at
    limit 1
),

final as (
    select * from inside
    union all
    select * from following
)

select * from final
order by observed_at
