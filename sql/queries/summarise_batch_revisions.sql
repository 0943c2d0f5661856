-- How many readings one batch revised, and the span of their times.
select
    count(*) as count_revised,
    min(observed_at) as first_observed_at,
    max(observed_at) as last_observed_at
from reading_revisions
where new_batch_id = :batch_id
