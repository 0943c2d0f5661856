-- Keep each staged reading's per-test flags with the QC run that gave them; a key already there is
-- rewritten only when a flag or the run changed. (`where true` lets SQLite parse the upsert.)
insert into readings_qc (
    sensor_id,
    observed_at,
    qc_run_id,
    qc_gross_range,
    qc_climatology,
    qc_spike,
    qc_rate_of_change,
    qc_flat_line,
    qc_gap,
    qc_attenuated,
    qc_tests
)
select
    sensor_id,
    observed_at,
    :qc_run_id as qc_run_id,
    qc_gross_range,
    qc_climatology,
    qc_spike,
    qc_rate_of_change,
    qc_flat_line,
    qc_gap,
    qc_attenuated,
    qc_tests
from qc_incoming
where true
on conflict (sensor_id, observed_at) do update
    set
        qc_run_id = excluded.qc_run_id,
        qc_gross_range = excluded.qc_gross_range,
        qc_climatology = excluded.qc_climatology,
        qc_spike = excluded.qc_spike,
        qc_rate_of_change = excluded.qc_rate_of_change,
        qc_flat_line = excluded.qc_flat_line,
        qc_gap = excluded.qc_gap,
        qc_attenuated = excluded.qc_attenuated,
        qc_tests = excluded.qc_tests
    where
        readings_qc.qc_run_id <> excluded.qc_run_id
        or readings_qc.qc_gross_range <> excluded.qc_gross_range
        or readings_qc.qc_climatology <> excluded.qc_climatology
        or readings_qc.qc_spike <> excluded.qc_spike
        or readings_qc.qc_rate_of_change <> excluded.qc_rate_of_change
        or readings_qc.qc_flat_line <> excluded.qc_flat_line
        or readings_qc.qc_gap <> excluded.qc_gap
        or readings_qc.qc_attenuated <> excluded.qc_attenuated
        or readings_qc.qc_tests <> excluded.qc_tests
