-- Set the worst-wins QC flag of each staged reading of one municipality, where it changed.
update readings
set qc_flag = qc_incoming.qc_flag
from qc_incoming
where
    readings.sensor_id = qc_incoming.sensor_id
    and readings.observed_at = qc_incoming.observed_at
    and readings.municipality_id = :municipality_id
    and readings.qc_flag <> qc_incoming.qc_flag
