-- The maintenance predictions of one municipality for one day.
select
    sensor_id,
    health_score,
    risk_level,
    predicted_failure_date,
    calibration_due_date,
    recommendation
from maintenance_predictions
where
    municipality_id = :municipality_id
    and day = :day
order by health_score, sensor_id
