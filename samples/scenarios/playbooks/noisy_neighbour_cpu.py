"""A batch job saturates one node's CPU; only the pods on that node slow down.

Playbook ``noisy_neighbour_cpu``: A batch job without CPU limits saturates one node: only
the pods on that node slow down, get throttled and fail probes; the node's CPU alarm fires.

Its message catalogue is ``samples/data/scenarios/noisy_neighbour_cpu.json``.
"""

from __future__ import annotations

import math

import numpy as np

from samples.datafiles import load_json
from samples.scenarios.draw import draw_int, pick
from samples.scenarios.run import METRIC_STEP, PlantedIncident, Run, Series
from samples.scenarios.spec import K8S_NORMAL, ScenarioSpec
from samples.scenarios.topology import APPS, NODES, SERVICES, name_suffix, new_pod

_DATA = load_json("scenarios", "noisy_neighbour_cpu.json")
_SLOW = _DATA["slow"]
_PROBE_TIMEOUTS = _DATA["probe_timeouts"]


def build(run: Run, inc: PlantedIncident) -> None:
    rng, node, tag, t0, end = run.rng, inc.target, inc.id, inc.start, inc.end
    inc.root_cause = f"node:{node}"
    inc.description = f"a reindex job without CPU limits saturates {node}; its neighbours slow down"
    name = f"search-reindex-{29_100_000 + draw_int(rng, 1000, 9999)}-{name_suffix(rng, 5)}"
    batch = new_pod(rng, name, "search-reindex", node, "plain", namespace="jobs")
    run.k8s_event(
        t0,
        tag,
        "service:search-reindex",
        ["namespace:jobs"],
        "SuccessfulCreate",
        f"Created pod: {batch.name}",
        warning=False,
        involved="Job",
        component="job-controller",
    )
    run.pod_event(
        t0 + 1,
        tag,
        batch,
        "Scheduled",
        f"Successfully assigned jobs/{batch.name} to {node}",
        warning=False,
    )
    run.pod_event(t0 + 3, tag, batch, "Started", "Started container reindex", warning=False)
    total = draw_int(rng, 3_000_000, 6_000_000)
    run.log(t0 + 5, tag, batch, "INFO", f"Starting full reindex: {total} documents, 16 workers")
    for k, t in enumerate(np.arange(t0 + 35, end - 40, 30.0)):
        done = min(total, (k + 1) * total // 30)
        run.log(
            float(t),
            tag,
            batch,
            "INFO",
            f"indexed {done}/{total} documents ({100 * done / total:.1f}%)",
        )
    first = math.ceil(t0 / METRIC_STEP)
    run.series[(batch.entity, "cpu_millicores")] = Series(
        "kubernetes", batch.related, "m", np.zeros(run.n_steps - first), first
    )
    run.shape(tag, batch.entity, "cpu_millicores", t0, end - 40, 3850, ramp=30)
    run.shape(
        tag,
        f"node:{node}",
        "cpu_percent",
        t0 + 10,
        end - 40,
        rng.uniform(96, 99.5),
        ramp=60,
        jitter=0.01,
    )
    victims = [p for p in run.topo.on_node(node) if p.service in ("frontend", *APPS)]
    for pod in victims:
        run.shape(tag, pod.entity, "cpu_throttled_percent", t0 + 30, end - 40, rng.uniform(35, 70))
        level, logger, text = _SLOW[pod.style]
        run.stream(
            tag,
            [pod],
            t0 + 40,
            end - 40,
            run.rate(0.03),
            level,
            (text,),
            logger,
            minimum=8,
            container="web" if pod.style == "node" else None,
        )
        port = SERVICES[pod.service][2]
        for k, t in enumerate(run.times(t0 + 60, end - 40, 1 / 90, minimum=2)):
            probe = pick(rng, _PROBE_TIMEOUTS).format(ip=pod.ip, port=port)
            run.pod_event(t, tag, pod, "Unhealthy", probe, count=k + 1)
    for service in sorted({p.service for p in victims}):
        entity = f"service:{service}"
        run.shape(
            tag,
            entity,
            "latency_p99_ms",
            t0 + 40,
            end - 40,
            run.base(entity, "latency_p99_ms") * rng.uniform(4, 9),
        )
    ta = t0 + rng.uniform(120, 200)
    run.alarm(
        ta,
        tag,
        f"node:{node}",
        f"eks-node-cpu-high-{node.split('.')[0]}",
        "node_cpu_utilization",
        rng.uniform(95, 99.5),
        90,
        related=[],
    )


SPEC = ScenarioSpec(
    "noisy_neighbour_cpu",
    "A batch job saturates one node's CPU; only the pods on that node slow down",
    lambda topo: [n for n in NODES if any(p.service in APPS for p in topo.on_node(n))],
    build,
    (
        r"reindex|indexed \d+/",
        K8S_NORMAL,
        r"[Ss]low request|took [\d.]+ ?m?s|event "
        r"loop lag|probe failed",
        r"eks-node-cpu-high",
    ),
)
