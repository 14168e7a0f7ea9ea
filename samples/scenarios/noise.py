"""Background of every run: steady traffic and noise that belongs to no incident.

Noise runs at a constant rate over the whole run (scaled by ``noise``): an SMTP relay
deferring mail, declined cards, a partner webhook answering 503, a recommendations call
that hangs up, duplicate keys in postgres, a flaky readiness probe, a cron job's warnings,
a flapping alarm, benign deploys and an old Sentry issue that keeps firing. The message
catalogue is ``samples/data/scenarios/background.json``.
"""

from __future__ import annotations

from samples.datafiles import load_json
from samples.scenarios.dialects import pino_fields
from samples.scenarios.draw import Fill, draw_hex, draw_int, pick
from samples.scenarios.rollouts import bump_version, rollout, startup
from samples.scenarios.run import Run
from samples.scenarios.topology import (
    NAMESPACE,
    NODES,
    NS,
    REGISTRY,
    SERVICES,
    name_suffix,
    new_pod,
)

_DATA = load_json("scenarios", "background.json")
_REQUESTS = _DATA["requests"]
_OK_STATUS = (200,) * 14 + (201, 304, 304, 404)
_PINO_INFO = _DATA["pino_info"]
_INFO: dict[str, list[list[str]]] = _DATA["info"]  # service -> [logger, template] of its INFO lines
_PG_INFO = _DATA["postgres_info"]
_REDIS_INFO = _DATA["redis_info"]
# [service, logger (or pino fields), level, template, share]: errors and warnings of no incident
_NOISE = [
    (service, logger if isinstance(logger, str) else pino_fields(**logger), level, text, share)
    for service, logger, level, text, share in _DATA["noise"]
]
_OLD_ISSUE = _DATA["old_issue"]


def background(run: Run) -> None:
    """Steady traffic and steady noise over the whole run."""
    topo, rng, end, noise = run.topo, run.rng, run.duration, run.noise
    for t in run.times(0, end, run.rate(0.30)):
        method, path = pick(rng, _REQUESTS)
        run.access(t, None, method, path, pick(rng, _OK_STATUS))
    front = topo.pods["frontend"]
    for t in run.times(0, end, run.rate(0.08)):
        msg, extra = pick(rng, _PINO_INFO)
        extra = pino_fields(**{k: v.format_map(Fill(rng, {})) for k, v in extra.items()})
        run.log(t, None, pick(rng, front), "INFO", msg, extra, container="web")
    for service, share in (("checkout", 0.17), ("payments", 0.15), ("inventory", 0.17)):
        pods, templates = topo.pods[service], _INFO[service]
        for t in run.times(0, end, run.rate(share)):
            logger, text = pick(rng, templates)
            run.log(t, None, pick(rng, pods), "INFO", text, logger)
    run.stream(None, topo.pods["postgres"], 0, end, run.rate(0.06), "LOG", _PG_INFO)
    run.stream(None, topo.pods["redis"], 0, end, run.rate(0.02), "INFO", _REDIS_INFO)
    for service, logger, level, text, share in _NOISE:
        container = "web" if service == "frontend" else None
        run.stream(
            None,
            topo.pods[service],
            0,
            end,
            run.rate(share) * noise,
            level,
            (text,),
            logger,
            container=container,
        )
    pg = topo.pods["postgres"][0]
    for t in run.times(0, end, run.rate(0.004) * noise):
        run.log(
            t, None, pg, "ERROR", 'duplicate key value violates unique constraint "orders_pkey"'
        )
        run.log(t + 0.001, None, pg, "DETAIL", "Key (id)=({pid}) already exists.")
    # an old Sentry issue that keeps firing, and its periodic snapshots
    run.sentry_events(None, "frontend", *_OLD_ISSUE, 0, end, run.rate(0.002) * noise)
    for k, t in enumerate(run.times(0, end, noise / 1800, minimum=2)):
        run.sentry_issue(
            t,
            None,
            "frontend",
            *_OLD_ISSUE,
            first_seen=-9 * 86400,
            count=4210 + 37 * k,
            substatus="ongoing",
        )
    run.sentry_events(
        None,
        "payments",
        "context canceled",
        "internal/api.(*Server).handleRefund",
        0,
        end,
        run.rate(0.001) * noise,
    )
    for t in run.times(0, end, noise / 420, minimum=2):  # a flaky readiness probe
        pod = pick(rng, topo.pods["inventory"])
        run.pod_event(
            t,
            None,
            pod,
            "Unhealthy",
            f'Readiness probe failed: Get "http://{pod.ip}:'
            '8000/healthz": context deadline exceeded (Client.Timeout exceeded while '
            "awaiting headers)",
            count=draw_int(rng, 1, 40),
        )
    t = rng.uniform(600, 1800)  # a flapping alarm about the report job
    while t < end - 60:
        name, entity = "report-generator-duration-high", "service:report-generator"
        run.alarm(t, None, entity, name, "JobDurationSeconds", rng.uniform(610, 900), 600)
        ok = t + rng.uniform(240, 600)
        if ok < end - 60:
            run.alarm(
                ok,
                None,
                entity,
                name,
                "JobDurationSeconds",
                rng.uniform(200, 500),
                600,
                above=False,
                state="OK",
            )
        t = ok + rng.uniform(1800, 3000) / max(noise, 0.25)
    _cron(run)
    _benign_deploys(run)


def _cron(run: Run) -> None:
    """report-generator runs every 15 minutes and always warns about skipped rows."""
    rng = run.rng
    t, job = 60 + rng.uniform(0, 300), 29_012_345
    while t < run.duration - 120:
        job += 15
        node = pick(rng, NODES)
        name = f"report-generator-{job}-{name_suffix(rng, 5)}"
        pod = new_pod(rng, name, "report-generator", node, "python")
        cron = {"warning": False, "involved": "CronJob", "component": "cronjob-controller"}
        run.k8s_event(
            t,
            None,
            "service:report-generator",
            NS,
            "SuccessfulCreate",
            f"Created job report-generator-{job}",
            **cron,
        )
        run.pod_event(
            t + 1,
            None,
            pod,
            "Scheduled",
            f"Successfully assigned {NAMESPACE}/{pod.name} to {node}",
            warning=False,
        )
        run.pod_event(
            t + 2,
            None,
            pod,
            "Pulled",
            f'Container image "{REGISTRY}/report-generator:1.4.0" already present on machine',
            warning=False,
        )
        run.pod_event(t + 2.5, None, pod, "Created", "Created container: report", warning=False)
        run.pod_event(t + 3, None, pod, "Started", "Started container report", warning=False)
        day = run.at(t).date().isoformat()
        run.log(t + 4, None, pod, "INFO", f"Generating sales report for {day}", "reports.daily")
        run.log(
            t + rng.uniform(8, 20),
            None,
            pod,
            "WARNING",
            "Skipped {n} rows with NULL customer_id in orders_archive",
            "reports.daily",
        )
        run.log(
            t + rng.uniform(25, 40),
            None,
            pod,
            "INFO",
            f"Report written to s3://shop-reports/daily/{day}.csv ({{bytes}} rows)",
            "reports.daily",
        )
        run.k8s_event(
            t + 45,
            None,
            "service:report-generator",
            NS,
            "SawCompletedJob",
            f"Saw completed job: report-generator-{job}, status: Complete",
            **cron,
        )
        t += 900


def _benign_deploys(run: Run) -> None:
    """Healthy rollouts: two in the baseline, one in the incident period away from incidents."""
    rng, half = run.rng, run.duration / 2
    busy = [(i.start - 900, i.end + 300) for i in run.incidents.values()]
    quiet = [
        t
        for t in range(int(half) + 120, run.duration - 600, 60)
        if not any(a <= t <= b for a, b in busy)
    ]
    plan = [
        (rng.uniform(600, half * 0.4), "inventory"),
        (rng.uniform(half / 2, half * 0.9), "frontend"),
    ]
    targets = {i.target for i in run.incidents.values()}
    spare = [s for s in ("frontend", "inventory", "payments", "checkout") if s not in targets]
    if quiet and spare:
        plan.append((float(pick(rng, quiet)), spare[0]))
    for t, service in plan:
        new = bump_version(SERVICES[service][3], patch=True)
        run.deploy(
            t,
            None,
            service,
            f"Deployed {service} {new} (argo-cd sync, revision {draw_hex(rng, 7)})",
            new,
        )
        for pod in rollout(run, t + 2, None, service, new, len(run.topo.pods[service])):
            startup(run, t + rng.uniform(10, 25), None, pod, new)
