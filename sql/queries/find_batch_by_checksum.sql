-- The batch (if any) that already holds this file of this municipality, by checksum.
select
    id,
    status,
    error
from ingest_batches
where municipality_id = :municipality_id
    and checksum_sha256 = :checksum_sha256
