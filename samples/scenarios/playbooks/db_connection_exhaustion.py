"""postgres runs out of connection slots; callers' pools time out.

Playbook ``db_connection_exhaustion``: postgres runs out of connection slots: it refuses
clients, the callers' pools time out (pgx in payments, SQLAlchemy in inventory), Sentry
opens issues, the payments latency and postgres connection alarms fire and the edge returns
5xx.

Its message catalogue is ``samples/data/scenarios/db_connection_exhaustion.json``.
"""

from __future__ import annotations

from samples.datafiles import load_json
from samples.scenarios.callers import callers_fail
from samples.scenarios.draw import draw_int, pick
from samples.scenarios.run import PlantedIncident, Run
from samples.scenarios.spec import EDGE_5XX, ScenarioSpec

_DATA = load_json("scenarios", "db_connection_exhaustion.json")
_RESERVED = _DATA["reserved"]  # postgres' two wordings of the reserved-slots error
_POSTGRES_SAYS = _DATA["postgres"]
_PAYMENTS_SAYS = _DATA["payments"]
_INVENTORY_SAYS = _DATA["inventory"]  # {reserved}: the wording the run drew
_SENTRY_ISSUES = _DATA["sentry"]  # [project, title, culprit]


def build(run: Run, inc: PlantedIncident) -> None:
    rng, tag, t0, end = run.rng, inc.id, inc.start, inc.end
    inc.root_cause = "service:postgres"
    inc.description = "postgres ran out of connection slots; callers' pools time out"
    topo, full = run.topo, t0 + 150
    run.shape(tag, "service:postgres", "db_connections", t0, end, 100, ramp=180, jitter=0.01)
    reserved = pick(rng, _RESERVED)
    run.stream(
        tag,
        topo.pods["postgres"],
        full,
        end - 60,
        run.rate(0.09),
        "FATAL",
        (*_POSTGRES_SAYS, reserved),
        minimum=20,
    )
    run.stream(
        tag,
        topo.pods["payments"],
        full,
        end - 60,
        run.rate(0.07),
        "ERROR",
        _PAYMENTS_SAYS,
        minimum=15,
    )
    run.stream(
        tag,
        topo.pods["inventory"],
        full,
        end - 60,
        run.rate(0.065),
        "ERROR",
        tuple(text.format(reserved=reserved) for text in _INVENTORY_SAYS),
        "inventory.db",
        minimum=15,
    )
    callers_fail(run, inc, "payments", full + 30, end - 60, 0.15, "500")
    for project, title, culprit in _SENTRY_ISSUES:
        first = full + rng.uniform(5, 40)
        run.sentry_issue(
            first + 30, tag, project, title, culprit, first_seen=first, count=draw_int(rng, 20, 200)
        )
        run.sentry_events(tag, project, title, culprit, first, end - 60, 1 / 30, minimum=3)
    ta, tb = full + rng.uniform(60, 120), t0 + rng.uniform(100, 160)
    run.alarm(
        ta,
        tag,
        "service:payments",
        "payments-p99-latency-high",
        "TargetResponseTime",
        rng.uniform(2200, 5200),
        1500,
    )
    run.alarm(
        tb,
        tag,
        "service:postgres",
        "postgres-connections-near-max",
        "DatabaseConnections",
        rng.uniform(91, 100),
        90,
    )
    run.shape(tag, "service:payments", "latency_p99_ms", full, end - 60, rng.uniform(2500, 5000))
    run.shape(tag, "service:inventory", "latency_p99_ms", full, end - 60, rng.uniform(1500, 4000))
    run.shape(tag, "service:payments", "http_5xx_rate", full, end - 60, rng.uniform(4, 12))


SPEC = ScenarioSpec(
    "db_connection_exhaustion",
    "postgres runs out of connection slots; callers' pools time out",
    lambda topo: ["postgres"],
    build,
    (
        r"too many clients|connection slots are reserved|QueuePool limit|"
        r"acquire connection",
        EDGE_5XX,
        r"payments-p99-latency-high|postgres-connections-near-max",
    ),
)
