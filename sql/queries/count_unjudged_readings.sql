-- How many readings of one municipality in the window [start, end) QC has not judged (flag 2):
-- readings that arrived late, or were revised, after their day was flagged.
select count(*) as unjudged
from readings
where
    sensor_id in (select id from sensors where municipality_id = :municipality_id)
    and municipality_id = :municipality_id
    and observed_at >= :start
    and observed_at < :end
    and qc_flag = 2
