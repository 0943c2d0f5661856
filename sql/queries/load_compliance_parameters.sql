-- The parameters one municipality monitors with an active sensor (judged even on days without data).
select distinct parameter
from sensors
where
    municipality_id = :municipality_id
    and active
order by parameter
