"""The anomaly ensemble: events and metric series in, ``AnomalySignal`` objects out.

Time is cut into windows of ``window_seconds`` aligned on ``baseline_end`` (default:
halfway through the data's time span). Windows before it are the baseline (what normal
looks like, background errors included); signals are only reported for the detection
period after it. A log event's "unit" is its template's cluster (``clusters``; the
template itself when unclustered) and its "service" the ``service:`` entity among its
entity and ``related`` (else its entity). Each detector scores candidates in its own
raw unit, with a floor the raw score must always exceed; one module per detector:

- ``new_templates``: a template (cluster) never seen in the baseline (floor 1.0);
- ``spikes``: a template's count in a window far above its baseline rate (floor 5.0);
- ``isolation_forest``: an unusual mix of templates in a window (floor 0.4);
- ``metric_deviations``: a metric's sustained robust z-score (floor 4.0);
- ``sentry_issues``: a Sentry issue new or regressed in the detection period (floor 0.5);
- ``alarms`` and ``kubernetes_warnings``: alarms firing, Kubernetes Warning events and
  bad pod/node states (floor 1.0), both scored by ``watched_events``;
- ``deploys``: deploys, reported as context for correlation and remediation.

``sev`` weighs severity: debug 0.3, info 0.5, warning 0.8, error and critical 1.0; so a
new INFO template never passes the new-template floor and INFO spikes need more
evidence than ERROR ones.

``thresholds`` holds the adaptive bar every detector's raw scores must exceed;
``ensemble`` holds ``AnomalyConfig``, the ensemble score and the entry point
``detect_signals``; ``context`` the timeline, event table and run-joining helpers the
detectors share.

Example:
    ```python
    from datetime import UTC, datetime, timedelta

    from tasks.incidents.anomaly import AnomalyConfig, detect_signals
    from tasks.telemetry.model import Event

    t0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    events = [
        Event(timestamp=t0 + timedelta(minutes=m), source="kubernetes", kind="k8s_event",
              entity="pod:checkout-7d9f", related=["service:checkout"], severity="warning",
              message="Back-off restarting failed container", attributes={"reason": "BackOff"})
        for m in (50, 51, 52, 53)
    ]
    events.insert(0, Event(timestamp=t0, source="kubernetes", kind="k8s_event",
                           entity="pod:checkout-7d9f", severity="info", message="Pulled image"))
    config = AnomalyConfig(baseline_end=t0 + timedelta(minutes=30))
    signals = detect_signals(events, [None] * len(events), {}, {}, config=config)
    print([(s.kind, s.entity, s.score) for s in signals])
    # [('k8s_warning', 'pod:checkout-7d9f', 0.675)]
    ```
"""

from tasks.incidents.anomaly.ensemble import (
    DEFAULT_DETECTORS,
    DETECTORS,
    AnomalyConfig,
    DetectorSettings,
    detect_signals,
)
from tasks.incidents.anomaly.kubernetes_warnings import BAD_K8S_REASONS
from tasks.incidents.anomaly.thresholds import adaptive_threshold

__all__ = [
    "BAD_K8S_REASONS",
    "DEFAULT_DETECTORS",
    "DETECTORS",
    "AnomalyConfig",
    "DetectorSettings",
    "adaptive_threshold",
    "detect_signals",
]
