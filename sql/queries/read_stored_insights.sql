-- The stored insights of one municipality, to compare a rerun's with (only changes are written).
-- is_significant as 1 or 0 on both databases (PostgreSQL's COPY would write t or f).
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
    case when is_significant then 1 else 0 end as is_significant,
    sentence
from insights
where municipality_id = :municipality_id
