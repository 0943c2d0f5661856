-- When each of a municipality's rows quarantined in [start, end) came, and whether it was released.
select
    created_at,
    case when released_at is null then 0 else 1 end as is_released
from quarantined_rows
where
    municipality_id = :municipality_id
    and created_at >= :start
    and created_at < :end
