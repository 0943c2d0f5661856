-- When one municipality's monthly report revision was last judged again and found unchanged
-- (an audit entry report.rechecked), null when never.
select max(occurred_at) as occurred_at
from audit_log
where
    municipality_id = :municipality_id
    and action = 'report.rechecked'
    and entity_type = 'report'
    and entity_id = :entity_id
