-- Which of the given ids are registered municipalities.
select id
from municipalities
where id in :municipality_ids
order by id
