"""Which events are alarms firing, and under which name (detector ``alarm``).

Alarm state ``state``/``new_state``/``newState``/``StateValue``/``status`` (ALARM,
alerting, firing; without one, an ``alarm`` event of severity error or worse counts),
alarm name ``alarm_name``/``AlarmName``/``alert_name``/``alertname``/``alarm``/``rule``/
``name`` (``tasks.telemetry.cloudwatch`` and ``grafana`` map into these; first match
wins). Scoring is shared with Kubernetes warnings: ``tasks.incidents.anomaly.watched_events``.

Example:
    ```python
    from datetime import UTC, datetime

    from tasks.incidents.anomaly.alarms import alarm_name
    from tasks.telemetry.model import Event

    event = Event(timestamp=datetime(2024, 5, 1, tzinfo=UTC), source="cloudwatch",
                  kind="alarm", entity="service:checkout", severity="error",
                  message="5xx above 5%", attributes={"AlarmName": "checkout-5xx",
                                                      "StateValue": "ALARM"})
    print(alarm_name(event))  # checkout-5xx
    ```
"""

from __future__ import annotations

from tasks.incidents.anomaly.context import first_value
from tasks.telemetry.model import SEVERITY_RANK, Event

_ALARM_STATE_KEYS = ("state", "new_state", "newState", "StateValue", "status")
_ALARM_NAME_KEYS = ("alarm_name", "AlarmName", "alert_name", "alertname", "alarm", "rule", "name")
_FIRING = {"alarm", "alerting", "firing"}


def alarm_name(event: Event) -> str | None:
    """The alarm's name when the event says it is firing, else None."""
    attrs = event.attributes
    state = first_value(attrs, _ALARM_STATE_KEYS)
    firing = (
        state.lower() in _FIRING
        if state is not None
        else SEVERITY_RANK[event.severity] >= SEVERITY_RANK["error"]
    )
    return (first_value(attrs, _ALARM_NAME_KEYS) or event.message[:80]) if firing else None
