-- The stored insights of one municipality, to compare a rerun's with (only changes are written).
select
    sensor_id,
    kind,
    period_start,
    period_end,
    value_mean,
    previous_mean,
    change_pct,
    slope_per_day,
    r_squared,
    p_value,
    is_significant,
    sentence
from insights
where municipality_id = :municipality_id
