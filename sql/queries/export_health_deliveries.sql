-- A municipality's webhook deliveries created in [start, end) and how they ended.
select
    created_at,
    status,
    attempt_count
from webhook_deliveries
where
    municipality_id = :municipality_id
    and created_at >= :start
    and created_at < :end
