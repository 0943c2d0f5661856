-- Every station of one municipality.
select
    id as station_id,
    name as station_name
from stations
where municipality_id = :municipality_id
order by id
