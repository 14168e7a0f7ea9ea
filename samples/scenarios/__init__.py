"""Synthetic incident scenarios: realistic multi-source telemetry with known ground truth.

``detect_incidents`` has to do its real job without a cluster, and ``evaluate_incidents``
needs runs where the right answer is known. :func:`generate` builds one: a small shop
(frontend -> checkout -> payments -> postgres, checkout -> inventory -> redis/postgres,
pods spread over three nodes, a cron job) whose telemetry looks the way the sources map
it (``tasks.telemetry.model``): container logs in several styles (Spring Boot, Go logfmt,
Python logging, gunicorn, pino JSON, nginx access/error, postgres, redis), Kubernetes
events and pod states, Sentry issues and error events, CloudWatch alarm state changes
and log events, Grafana deploy annotations, and metric series (Prometheus via Grafana,
metrics-server, CloudWatch).

A run has a baseline half that holds no incident, then plays the requested scenarios one
after another (``overlap=True`` starts the first two together, on different entities).
Noise runs at a constant rate over the whole run, so the incident period has errors that
belong to no incident: an SMTP relay deferring mail, declined cards, a partner webhook
answering 503, a recommendations call that hangs up, duplicate keys in postgres, a flaky
readiness probe, a cron job's warnings, a flapping alarm, benign deploys, an old Sentry
issue that keeps firing and single-sample metric glitches. One failure is worded
differently by each service and source (a timeout is ``SocketTimeoutException: Read timed
out`` in checkout, ``context deadline exceeded`` in payments, ``upstream timed out (110:
...)`` in nginx, ``timeout of 10000ms exceeded`` in the Node frontend), so grouping has to
be semantic, not textual.

The ground truth (:class:`tasks.incidents.ground_truth.GroundTruth`) names, per incident,
its scenario, root-cause entity, time span, the positions of its events in
``Scenario.events`` and the ``(entity, metric)`` series it moved; every other event is
noise. Everything is a function of the seed. Scenarios (:data:`SCENARIOS`) each leave
signals in at least two sources.

Where things are: ``topology`` (services, call graph, pods), ``dialects`` (how each kind
of service writes a line), ``noise`` and ``metrics`` (the background of every run),
``playbooks/`` (one module per failure story), ``callers`` and ``rollouts`` (effects
several playbooks share), ``run`` (the event emitters), ``truth`` (the ground-truth
assembly), ``generate`` and ``files``. Message catalogues are JSON files under
``samples/data/scenarios/``.

Example:
    ```python
    from samples.scenarios import SCENARIO_NAMES, generate

    run = generate(list(SCENARIO_NAMES), seed=0, lines=20_000)
    for incident in run.truth.incidents:
        print(incident.id, incident.root_cause_entity, len(incident.event_indices))
    ```
"""

from samples.scenarios.files import ScenarioPaths, load_truth, write_scenario
from samples.scenarios.generate import (
    DEFAULT_START,
    MAX_LINES,
    MIN_INCIDENT_PERIOD_MINUTES,
    MIN_LINES,
    SLOT_MINUTES,
    generate,
)
from samples.scenarios.playbooks import SCENARIO_NAMES, SCENARIOS
from samples.scenarios.run import METRIC_STEP
from samples.scenarios.spec import ScenarioSpec
from samples.scenarios.topology import DEPENDENCIES, NAMESPACE
from samples.scenarios.truth import Scenario

__all__ = [
    "DEFAULT_START",
    "DEPENDENCIES",
    "MAX_LINES",
    "METRIC_STEP",
    "MIN_INCIDENT_PERIOD_MINUTES",
    "MIN_LINES",
    "NAMESPACE",
    "SCENARIOS",
    "SCENARIO_NAMES",
    "SLOT_MINUTES",
    "Scenario",
    "ScenarioPaths",
    "ScenarioSpec",
    "generate",
    "load_truth",
    "write_scenario",
]
