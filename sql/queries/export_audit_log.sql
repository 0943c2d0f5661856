-- One page of a municipality's audit entries in [start, end), ids above after_id.
select
    id as audit_id,
    occurred_at,
    actor,
    action,
    entity_type,
    entity_id,
    details
from audit_log
where
    municipality_id = :municipality_id
    and occurred_at >= :start
    and occurred_at < :end
    and id > :after_id
order by id
limit :page_rows
