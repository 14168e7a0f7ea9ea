"""A dependency stalls; callers time out, retry, open their circuit breaker.

Playbook ``upstream_timeouts``: A dependency stalls: checkout times out, retries and opens
its circuit breaker, nginx returns 504s, Sentry opens issues and the edge response-time
alarm fires.

Its message catalogue is ``samples/data/scenarios/upstream_timeouts.json``.
"""

from __future__ import annotations

import numpy as np

from samples.datafiles import load_json
from samples.scenarios.callers import callers_fail
from samples.scenarios.draw import draw_int
from samples.scenarios.run import PlantedIncident, Run
from samples.scenarios.spec import EDGE_5XX, ScenarioSpec
from samples.scenarios.topology import SERVICES

_DATA = load_json("scenarios", "upstream_timeouts.json")
_STALL = _DATA["stall"]


def build(run: Run, inc: PlantedIncident) -> None:
    rng, u, tag, t0, end = run.rng, inc.target, inc.id, inc.start, inc.end
    inc.root_cause = f"service:{u}"
    inc.description = f"{u} stalls; checkout times out, retries and opens its circuit breaker"
    topo = run.topo
    for level, logger, text, style in _STALL[SERVICES[u][1]]:
        run.stream(
            tag,
            topo.pods[u],
            t0,
            end - 60,
            run.rate(0.025),
            level,
            (text,),
            logger,
            minimum=6,
            style=style,
        )
    checkout, cls = topo.pods["checkout"], f"c.s.checkout.client.{u.capitalize()}Client"
    run.stream(
        tag,
        checkout,
        t0 + 20,
        end - 60,
        run.rate(0.055),
        "WARN",
        (
            f"Retry '{u}' recorded a failed retry attempt. Number of retry attempts: '{{n}}'. "
            "Waiting PT0.2S until the next attempt. Last exception was: "
            "java.net.SocketTimeoutException: Read timed out",
            f"Retrying call to {u} (attempt 2 of 3) after 200 ms backoff",
        ),
        "i.g.r.retry.internal.RetryImpl",
        minimum=15,
    )
    opened = t0 + rng.uniform(90, 150)
    for k, t in enumerate(np.arange(opened, end - 60, 60.0)):
        run.log(
            float(t),
            tag,
            checkout[k % len(checkout)],
            "WARN",
            f"CircuitBreaker '{u}' "
            f"changed state from {'CLOSED' if k == 0 else 'HALF_OPEN'} to OPEN",
            "i.g.r.circuitbreaker.internal.CircuitBreakerStateMachine",
        )
    run.stream(
        tag,
        checkout,
        opened,
        end - 60,
        run.rate(0.03),
        "ERROR",
        (
            "io.github.resilience4j.circuitbreaker.CallNotPermittedException: CircuitBreaker "
            f"'{u}' is OPEN and does not permit further calls",
        ),
        cls,
        minimum=8,
    )
    callers_fail(run, inc, u, t0 + 20, end - 60, 0.3, "timeout")
    callers_fail(run, inc, "checkout", t0 + 40, end - 60, 0.1, "timeout")
    run.stream(
        tag,
        topo.pods["frontend"],
        t0 + 40,
        end - 60,
        run.rate(0.025),
        "ERROR",
        (
            "upstream timed out (110: Connection timed out) while reading response header from "
            'upstream, client: {ip}, server: shop.example.com, request: "POST /api/checkout '
            'HTTP/1.1", upstream: "http://{ip}:8080/api/checkout", host: "shop.example.com"',
        ),
        minimum=6,
        style="nginx-error",
        container="nginx",
    )
    first = t0 + rng.uniform(40, 90)
    for project, title, culprit in (
        ("checkout", "SocketTimeoutException: Read timed out", f"{cls} in call"),
        (
            "frontend",
            "AxiosError: timeout of 10000ms exceeded",
            "src/api/checkout.ts in placeOrder",
        ),
    ):
        run.sentry_issue(
            first + 30, tag, project, title, culprit, first_seen=first, count=draw_int(rng, 30, 300)
        )
        run.sentry_events(tag, project, title, culprit, first, end - 60, 1 / 25, minimum=3)
        first += rng.uniform(10, 40)
    ta = t0 + rng.uniform(80, 140)
    run.alarm(
        ta,
        tag,
        "service:frontend",
        "shop-alb-target-response-time-high",
        "TargetResponseTime",
        rng.uniform(6, 10),
        2,
    )
    run.shape(tag, f"service:{u}", "latency_p99_ms", t0, end - 60, rng.uniform(9000, 30000))
    run.shape(tag, "service:checkout", "latency_p99_ms", t0 + 20, end - 60, 10000, jitter=0.02)
    run.shape(tag, "service:checkout", "http_5xx_rate", t0 + 20, end - 60, rng.uniform(5, 15))
    run.shape(tag, "service:frontend", "http_5xx_rate", t0 + 20, end - 60, rng.uniform(3, 9))


SPEC = ScenarioSpec(
    "upstream_timeouts",
    "A dependency stalls; callers time out, retry, open their circuit breaker; 504s",
    lambda topo: ["inventory", "payments"],
    build,
    (
        r"WORKER TIMEOUT|took [\d.]+s|slow request|exceeded deadline|[Tt]imed out|Retry|"
        r"CircuitBreaker|timeout of 10000ms",
        EDGE_5XX,
        r"target-response-time-high",
    ),
)
