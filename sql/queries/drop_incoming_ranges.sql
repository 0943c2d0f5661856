-- Drop this connection's temporary table of incoming time spans, if any.
drop table if exists incoming_ranges
