"""A service leaks memory until its containers are OOMKilled, again and again.

Playbook ``memory_leak_oom``: A service leaks memory until its containers are OOMKilled,
again and again: each pod's memory climbs to the limit, the runtime warns (and says
OutOfMemoryError), the kernel kills it, the kubelet restarts it and backs off, callers are
refused meanwhile.

Its message catalogue is ``samples/data/scenarios/memory_leak_oom.json``.
"""

from __future__ import annotations

import math

import numpy as np

from samples.datafiles import load_json
from samples.scenarios.callers import callers_fail
from samples.scenarios.draw import VALUES, draw_int
from samples.scenarios.rollouts import startup
from samples.scenarios.run import METRIC_STEP, PlantedIncident, Run
from samples.scenarios.spec import EDGE_5XX, K8S_NORMAL, STARTED, ScenarioSpec
from samples.scenarios.topology import APPS, NAMESPACE, REGISTRY, SERVICES

_DATA = load_json("scenarios", "memory_leak_oom.json")
_MEM_WARN = _DATA["mem_warn"]
_MEM_ERROR = _DATA["mem_error"]
_MEM_ISSUE = _DATA["mem_issue"]
_PROCESS = _DATA["process"]


def build(run: Run, inc: PlantedIncident) -> None:
    rng, s, tag, t0, end = run.rng, inc.target, inc.id, inc.start, inc.end
    inc.root_cause = f"service:{s}"
    inc.description = f"{s} leaks memory until its containers are OOMKilled, again and again"
    limit, version = 1024 * 2**20, SERVICES[s][3]
    image = f"{REGISTRY}/{s}:{version}"
    alarm_at = t0 + 300.0
    for p, pod in enumerate(run.topo.pods[s]):
        series = run.series[(pod.entity, "memory_bytes")]
        base = float(np.median(series.values))
        t, climb, restarts = t0 + p * rng.uniform(40, 120), rng.uniform(300, 420), 0
        while t + climb < end - 30:
            kill = t + climb
            i0, i1 = math.ceil(t / METRIC_STEP), int(kill // METRIC_STEP) + 1
            ramp = np.linspace(base, limit * 0.995, i1 - i0)
            series.values[i0:i1] = ramp * (1 + 0.004 * run.nrng.standard_normal(i1 - i0))
            inc.metric_keys.add((pod.entity, "memory_bytes"))
            run.touch(tag, t, kill)
            if p == 0 and restarts == 0:
                alarm_at = t + climb * 0.8
            level, logger, text = _MEM_WARN[pod.style]
            run.stream(tag, [pod], kill - 120, kill, 1 / 12, level, (text,), logger, minimum=4)
            if pod.style in _MEM_ERROR:
                logger, text = _MEM_ERROR[pod.style]
                for j in range(draw_int(rng, 2, 5)):
                    run.log(kill - 8 + j, tag, pod, "ERROR", text, logger)
            restarts += 1
            run.k8s_event(
                kill,
                tag,
                pod.entity,
                pod.related,
                "OOMKilling",
                "Memory cgroup out of "
                f"memory: Killed process {draw_int(rng, 2000, 9000)} ({_PROCESS[pod.style]})"
                f" total-vm:4120332kB, anon-rss:1048{draw_int(rng, 100, 999)}kB, file-rss:"
                "0kB, shmem-rss:0kB, UID:1000 pgtables:2424kB oom_score_adj:983",
                involved="Node",
                component="kernel-monitor",
            )
            run.pod_state(
                kill + 2,
                tag,
                pod,
                "OOMKilled",
                f"container {s} terminated with exit code 137 (restart count {restarts})",
                restarts,
            )
            if restarts >= 2:
                run.pod_event(
                    kill + 3,
                    tag,
                    pod,
                    "BackOff",
                    f"Back-off restarting failed "
                    f"container {s} in pod {pod.name}_{NAMESPACE}({VALUES['uid'](rng)})",
                    count=restarts - 1,
                )
            back = kill + (10 if restarts < 2 else 20)
            run.pod_event(
                back,
                tag,
                pod,
                "Pulled",
                f'Container image "{image}" already present on machine',
                warning=False,
            )
            run.pod_event(back + 0.5, tag, pod, "Started", f"Started container {s}", warning=False)
            startup(run, back + 3, tag, pod, version)
            callers_fail(run, inc, s, kill, back + 8, 0.6, "refused")
            i2 = min(int((back + 30) // METRIC_STEP) + 1, len(series.values))
            series.values[i1:i2] = base * (1 + 0.01 * run.nrng.standard_normal(max(i2 - i1, 0)))
            t = back + 30
            climb *= rng.uniform(0.6, 0.8)  # it leaks faster under the backlog
    run.alarm(
        alarm_at,
        tag,
        f"service:{s}",
        f"{s}-memory-utilization-high",
        "pod_memory_utilization_over_pod_limit",
        rng.uniform(91, 99),
        90,
    )
    if s in _MEM_ISSUE:
        title, culprit = _MEM_ISSUE[s]
        run.sentry_issue(
            alarm_at + 80,
            tag,
            s,
            title,
            culprit,
            first_seen=alarm_at + 60,
            count=draw_int(rng, 3, 9),
        )


SPEC = ScenarioSpec(
    "memory_leak_oom",
    "A service leaks memory until its containers are OOMKilled, again and again",
    lambda topo: list(APPS),
    build,
    (
        r"Pause Full|memory usage high|exceeds soft limit|OutOfMemoryError|MemoryError|"
        r"out of memory|OOMKilled|Back-off",
        K8S_NORMAL,
        STARTED,
        r"Connection refused|"
        r"ECONNREFUSED",
        EDGE_5XX,
        r"memory-utilization-high",
    ),
)
