-- Drop this connection's temporary table of QC flags, if any.
drop table if exists qc_incoming
