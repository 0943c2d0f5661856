-- The readings of some sensors of one municipality in [start, end), with their QC flag: the
-- compliance rules that need every sample (lab rounds, turbidity, confirmations) read these.
select
    sensor_id,
    observed_at,
    value,
    qc_flag
from readings
where
    municipality_id = :municipality_id
    and sensor_id in :sensor_ids
    and observed_at >= :start
    and observed_at < :end
order by sensor_id, observed_at
