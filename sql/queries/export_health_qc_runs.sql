-- A municipality's QC runs of the local days [from_day, to_day].
select
    day,
    count_readings,
    count_suspect,
    count_fail
from qc_runs
where
    municipality_id = :municipality_id
    and day >= :from_day
    and day <= :to_day
