-- The sensors whose readings one batch revised.
select distinct sensor_id
from reading_revisions
where new_batch_id = :batch_id
order by sensor_id
