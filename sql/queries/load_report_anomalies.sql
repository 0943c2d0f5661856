-- The anomalies of one municipality observed during its local day, counted by severity.
select
    severity,
    count(*) as anomaly_count
from anomalies
where
    municipality_id = :municipality_id
    and observed_at >= :window_start
    and observed_at < :window_end
group by severity
