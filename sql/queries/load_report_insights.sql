-- The insights of one municipality whose week or month ends with the reported local day (their
-- period_end is the day after it).
select
    sensor_id,
    kind,
    sentence
from insights
where
    municipality_id = :municipality_id
    and period_end = :day_after
order by kind, sensor_id
