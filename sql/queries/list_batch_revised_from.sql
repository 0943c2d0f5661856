-- The batches whose values one batch replaced.
select distinct old_batch_id
from reading_revisions
where new_batch_id = :batch_id
order by old_batch_id
