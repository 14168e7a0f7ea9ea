"""Steady metric series of every run (one sample a minute); playbooks then reshape them.

Request rate, p99 latency and 5xx rate per service (Grafana); CPU, memory and throttling per
pod (metrics-server, Grafana); CPU per node (CloudWatch); postgres connections (Grafana).
"""

from __future__ import annotations

from samples.scenarios.run import Run
from samples.scenarios.topology import NODES, NS


def steady_metrics(run: Run) -> None:
    """Steady metric series; scenarios then reshape what they move."""
    rng = run.rng
    rps = {"frontend": 120.0, "checkout": 40.0, "payments": 30.0, "inventory": 60.0}
    p99 = {"frontend": 180.0, "checkout": 140.0, "payments": 220.0, "inventory": 60.0}
    for service in rps:
        entity = f"service:{service}"
        run.add_series(entity, "request_rate", "grafana", "req/s", rps[service], NS)
        run.add_series(entity, "latency_p99_ms", "grafana", "ms", p99[service], NS, 0.08)
        run.add_series(entity, "http_5xx_rate", "grafana", "%", rng.uniform(0.05, 0.3), NS, 0.3)
    for pods in run.topo.pods.values():
        for pod in pods:
            rel = pod.related
            run.add_series(
                pod.entity, "cpu_millicores", "kubernetes", "m", rng.uniform(120, 450), rel, 0.1
            )
            run.add_series(
                pod.entity,
                "memory_bytes",
                "kubernetes",
                "bytes",
                rng.uniform(280, 620) * 2**20,
                rel,
                0.01,
            )
            run.add_series(
                pod.entity, "cpu_throttled_percent", "grafana", "%", rng.uniform(0.5, 3), rel, 0.3
            )
    for node in NODES:
        run.add_series(f"node:{node}", "cpu_percent", "cloudwatch", "%", rng.uniform(25, 45), [])
    run.add_series(
        "service:postgres",
        "db_connections",
        "grafana",
        "connections",
        rng.uniform(38, 52),
        NS,
        0.06,
    )


# --------------------------------------------------------------------------- scenarios
