import pytest
from sqlalchemy import select

from tasks.database import begin
from tasks.models import AuditLog, Municipality, Sensor
from tasks.registry import apply_registry, parse_registry

RIVERTON = """
municipality: {id: riverton, name: Riverton, timezone: America/Chicago, standards: [EPA, WHO],
               regulator_emails: [regulator@riverton.example]}
stations:
  - id: riverton-plant
    name: Riverton Plant
    sensors:
      - {id: riverton-plant-ph, parameter: ph, interval_seconds: 60}
      - {id: riverton-plant-turbidity, parameter: turbidity, valid_max: 50}
"""


def test_registry_creates_then_updates_without_duplicates(database):
    with begin() as conn:
        apply_registry(conn, parse_registry(RIVERTON))
    with begin() as conn:
        apply_registry(conn, parse_registry(RIVERTON))  # unchanged: no audit line
    with begin() as conn:
        apply_registry(conn, parse_registry(RIVERTON.replace("name: Riverton,", "name: Riverton City,")))
    with begin() as conn:
        municipality = conn.execute(select(Municipality.name, Municipality.timezone)).one()
        sensors = conn.execute(
            select(Sensor.id, Sensor.unit, Sensor.valid_min, Sensor.valid_max).order_by(Sensor.id)
        ).all()
        audits = conn.execute(select(AuditLog.action, AuditLog.details).order_by(AuditLog.id)).all()
    assert tuple(municipality) == ("Riverton City", "America/Chicago")
    assert [tuple(s) for s in sensors] == [
        ("riverton-plant-ph", "pH", 0.0, 14.0),
        ("riverton-plant-turbidity", "NTU", 0.0, 50.0),
    ]
    assert [(action, details["changed"]) for action, details in audits] == [
        ("registry.applied", {"municipality": 1, "stations": 1, "sensors": 2}),
        ("registry.applied", {"municipality": 1, "stations": 0, "sensors": 0}),
    ]


def test_registry_refuses_another_municipalitys_sensor(database):
    with begin() as conn:
        apply_registry(conn, parse_registry(RIVERTON))
    intruder = RIVERTON.replace("id: riverton,", "id: lakeside,").replace("id: riverton-plant\n",
                                                                          "id: lakeside-plant\n")
    with pytest.raises(ValueError, match="belong to another municipality"):
        with begin() as conn:
            apply_registry(conn, parse_registry(intruder))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("America/Chicago", "Mars/Olympus"), "unknown timezone"),
        (("parameter: ph", "parameter: unobtainium"), "unknown parameter"),
        (("regulator@riverton.example", "not-an-address"), "regulator_emails"),
    ],
)
def test_registry_errors_say_what_is_wrong(change, message):
    with pytest.raises(ValueError, match=message):
        parse_registry(RIVERTON.replace(*change))
