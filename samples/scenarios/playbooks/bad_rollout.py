"""A new version crash-loops after its rollout; callers and the edge return 5xx.

Playbook ``bad_rollout``: A new version crash-loops after its rollout: its pods start, crash
and back off (each runtime crashes in its own words), Sentry opens an issue, callers and the
edge return 5xx and an alarm fires, until the rollout is rolled back.

Its message catalogue is ``samples/data/scenarios/bad_rollout.json``.
"""

from __future__ import annotations

from samples.datafiles import load_json
from samples.scenarios.callers import callers_fail, edge_alarm
from samples.scenarios.draw import VALUES, draw_hex, draw_int, pick
from samples.scenarios.rollouts import bump_version, rollout, startup
from samples.scenarios.run import PlantedIncident, Run
from samples.scenarios.spec import EDGE_5XX, K8S_NORMAL, STARTED, ScenarioSpec
from samples.scenarios.topology import APPS, NAMESPACE, NS, SERVICES

_DATA = load_json("scenarios", "bad_rollout.json")
_CRASH = _DATA["crash"]
_ROLLOUT_ISSUE = _DATA["rollout_issue"]
_BACKOFF = (10, 20, 40, 80, 160, 300)


def build(run: Run, inc: PlantedIncident) -> None:
    rng, s, tag, t0, end = run.rng, inc.target, inc.id, inc.start, inc.end
    old = SERVICES[s][3]
    new = bump_version(old)
    inc.root_cause = f"service:{s}"
    inc.description = f"{s} {new} crash-loops after its rollout and fails requests; rolled back"
    note = pick(
        rng,
        (
            f"Deployed {s} {new} (argo-cd sync, revision {draw_hex(rng, 7)})",
            f"Release {s} v{new} to production by ci-bot",
        ),
    )
    run.deploy(t0, tag, s, note, new)
    pods = rollout(run, t0 + 2, tag, s, new, 2)
    style = "gunicorn" if s == "inventory" else None
    for pod in pods:
        t, k = t0 + rng.uniform(12, 20), 0
        while t < end - 30:
            startup(run, t, tag, pod, new)
            crash = t + rng.uniform(4, 12)
            for j, (level, logger, text) in enumerate(_CRASH[pod.style]):
                run.log(crash + 0.01 * j, tag, pod, level, text, logger, style=style)
            if pod.style == "java":
                run.pod_event(
                    crash + 2,
                    tag,
                    pod,
                    "Unhealthy",
                    f'Liveness probe failed: Get "http'
                    f'://{pod.ip}:8080/actuator/health/liveness": HTTP probe failed '
                    "with statuscode: 503",
                    count=k + 1,
                )
                run.pod_event(
                    crash + 2.5,
                    tag,
                    pod,
                    "Killing",
                    f"Container {s} failed liveness probe, will be restarted",
                    warning=False,
                )
            k += 1
            wait = _BACKOFF[min(k, len(_BACKOFF)) - 1]
            uid = VALUES["uid"](rng)
            run.pod_event(
                crash + 3,
                tag,
                pod,
                "BackOff",
                f"Back-off restarting failed container {s} in pod {pod.name}_{NAMESPACE}({uid})",
                count=k,
            )
            run.pod_state(
                crash + 5,
                tag,
                pod,
                "CrashLoopBackOff",
                f"back-off {wait}s restarting "
                f"failed container={s} pod={pod.name}_{NAMESPACE}({uid})",
                k,
            )
            t = crash + wait + rng.uniform(1, 3)
    title, culprit = _ROLLOUT_ISSUE[s]
    run.sentry_events(tag, s, title, culprit, t0 + 25, end - 60, 1 / 20, minimum=5)
    run.sentry_issue(
        t0 + 55, tag, s, title, culprit, first_seen=t0 + 25, count=draw_int(rng, 8, 40)
    )
    callers_fail(run, inc, s, t0 + 20, end - 60, 0.25, "reset")
    edge_alarm(run, inc, t0 + rng.uniform(90, 150))
    run.deploy(
        end - 60,
        tag,
        s,
        f"Rollback {s} to {old} (argo-cd rollback, revision {draw_hex(rng, 7)})",
        old,
    )
    run.k8s_event(
        end - 55,
        tag,
        f"service:{s}",
        NS,
        "ScalingReplicaSet",
        f"Scaled down replica set {pods[0].name.rsplit('-', 1)[0]} to 0",
        warning=False,
        involved="Deployment",
        component="deployment-controller",
    )
    for service in (s, *run.topo.callers[s], "frontend"):
        run.shape(tag, f"service:{service}", "http_5xx_rate", t0 + 20, end - 60, rng.uniform(6, 18))


SPEC = ScenarioSpec(
    "bad_rollout",
    "A new version crash-loops after its rollout; callers and the edge return 5xx",
    lambda topo: list(APPS),
    build,
    (
        r"^(Deployed|Release|Rollback) ",
        K8S_NORMAL,
        STARTED,
        r"[Bb]ack-off",
        r"NullPointerException|nil pointer|SIGSEGV|goroutine|Exception in worker|Traceback|"
        r"Worker failed to boot|is DOWN|[Ll]iveness probe",
        r"Connection reset|Unexpected "
        r"end of file|socket hang up",
        EDGE_5XX,
        r"shop-alb-5xx-high",
        r"WAREHOUSE_ID",
    ),
)
