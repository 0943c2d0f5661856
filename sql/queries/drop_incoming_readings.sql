-- Drop this connection's temporary table of incoming readings, if any.
drop table if exists incoming_readings
