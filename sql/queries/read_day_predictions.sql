-- The maintenance predictions of one municipality for one day.
select
    sensor_id,
    day,
    health_score,
    risk_level,
    predicted_failure_date,
    confidence,
    calibration_due_date,
    recommendation
from maintenance_predictions
where
    municipality_id = :municipality_id
    and day = :day
