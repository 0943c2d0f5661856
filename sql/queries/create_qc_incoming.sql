-- A temporary table for the QC flags of one municipality's day: the worst-wins flag, each test's flag
-- and the tests that gave the worst, before they are written to readings and readings_qc.
create temporary table qc_incoming (
    sensor_id varchar(64) not null,
    observed_at timestamp with time zone not null,
    qc_flag smallint not null,
    qc_gross_range smallint not null,
    qc_climatology smallint not null,
    qc_spike smallint not null,
    qc_rate_of_change smallint not null,
    qc_flat_line smallint not null,
    qc_gap smallint not null,
    qc_attenuated smallint not null,
    qc_tests varchar(200) not null
)
