-- Per municipality, what the nightly run produced for the given day (the demo's closing table).
with
reading_counts as (
    select municipality_id, count(*) as readings from readings group by municipality_id
),
quarantine_counts as (
    select municipality_id, count(*) as quarantined from quarantined_rows group by municipality_id
),
incident_counts as (
    select municipality_id, count(*) as incidents from incidents group by municipality_id
),
compliance_counts as (
    select
        municipality_id,
        sum(case when status = 'COMPLIANT' then 1 else 0 end) as compliant,
        sum(case when status = 'WARNING' then 1 else 0 end) as warning,
        sum(case when status = 'NON_COMPLIANT' then 1 else 0 end) as non_compliant
    from compliance_results
    where period_start = :day
    group by municipality_id
),
report_counts as (
    select municipality_id, count(*) as reports from reports where period_start = :day
    group by municipality_id
),
event_counts as (
    select municipality_id, count(*) as webhook_events from webhook_events group by municipality_id
),
final as (
    select
        m.id as municipality_id,
        coalesce(r.readings, 0) as readings,
        coalesce(q.quarantined, 0) as quarantined,
        coalesce(i.incidents, 0) as incidents,
        coalesce(c.compliant, 0) as compliant,
        coalesce(c.warning, 0) as warning,
        coalesce(c.non_compliant, 0) as non_compliant,
        coalesce(p.reports, 0) as reports,
        coalesce(e.webhook_events, 0) as webhook_events
    from municipalities as m
    left join reading_counts as r on r.municipality_id = m.id
    left join quarantine_counts as q on q.municipality_id = m.id
    left join incident_counts as i on i.municipality_id = m.id
    left join compliance_counts as c on c.municipality_id = m.id
    left join report_counts as p on p.municipality_id = m.id
    left join event_counts as e on e.municipality_id = m.id
)
select * from final order by municipality_id
