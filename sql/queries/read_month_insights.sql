-- The insights of one municipality whose period ends in one local calendar month: the month
-- compared with the month before and with the same month a year before, and each week whose last
-- day is in the month (a week running into the next month belongs to that month's report).
-- An insight's period_end is the local day after its period, so it ends in the month when
-- period_end is after the month's first day and at most the first day after the month.
-- The sensor and station must be the municipality's own as well.
select
    insights.kind,
    insights.period_start,
    insights.period_end,
    stations.name as station,
    insights.sensor_id,
    sensors.parameter,
    insights.change_pct,
    case when insights.is_significant then 1 else 0 end as is_significant,
    insights.sentence
from insights
inner join sensors on insights.sensor_id = sensors.id
inner join stations on sensors.station_id = stations.id
where
    insights.municipality_id = :municipality_id
    and sensors.municipality_id = :municipality_id
    and stations.municipality_id = :municipality_id
    and insights.period_end > :month_start
    and insights.period_end <= :month_after
order by insights.period_end, insights.period_start, insights.kind, insights.sensor_id
