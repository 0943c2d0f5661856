-- The daily compliance results of one municipality for one day, with rule and citation.
select
    standard,
    parameter,
    status,
    statistic,
    statistic_value,
    limit_value,
    limit_kind,
    unit,
    deviation_pct,
    sample_count,
    excluded_count,
    rule,
    citation
from compliance_results
where
    municipality_id = :municipality_id
    and period_kind = 'day'
    and period_start = :day
order by standard, parameter
