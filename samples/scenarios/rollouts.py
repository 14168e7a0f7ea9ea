"""Deployments rolling out and services starting: the events and lines every rollout leaves.

Used by the healthy deploys of the background (``samples.scenarios.noise``) and by the
playbooks that roll out or restart a service.
"""

from __future__ import annotations

from samples.scenarios.dialects import pino_fields
from samples.scenarios.draw import draw_int, pick
from samples.scenarios.run import Run
from samples.scenarios.topology import (
    NAMESPACE,
    NODES,
    NS,
    REGISTRY,
    SERVICES,
    Pod,
    name_suffix,
    new_pod,
)


def bump_version(version: str, patch: bool = False) -> str:
    major, minor, micro = (int(x) for x in version.split("."))
    return f"{major}.{minor}.{micro + 1}" if patch else f"{major}.{minor + 1}.0"


def rollout(
    run: Run, t: float, tag: str | None, service: str, version: str, n_pods: int
) -> list[Pod]:
    """A Deployment's new ReplicaSet scaling up: its events, and the new pods."""
    rng = run.rng
    replica_set = f"{service}-{name_suffix(rng, 10)}"
    run.k8s_event(
        t,
        tag,
        f"service:{service}",
        NS,
        "ScalingReplicaSet",
        f"Scaled up replica set {replica_set} to {n_pods}",
        warning=False,
        involved="Deployment",
        component="deployment-controller",
    )
    pods, image = [], f"{REGISTRY}/{service}:{version}"
    for _ in range(n_pods):
        node = pick(rng, NODES)
        pod = new_pod(
            rng, f"{replica_set}-{name_suffix(rng, 5)}", service, node, SERVICES[service][1]
        )
        took = rng.uniform(1.5, 6)
        normal = {"warning": False}
        run.pod_event(
            t + 1,
            tag,
            pod,
            "Scheduled",
            f"Successfully assigned {NAMESPACE}/{pod.name} to {node}",
            **normal,
        )
        run.pod_event(t + 1.5, tag, pod, "Pulling", f'Pulling image "{image}"', **normal)
        run.pod_event(
            t + 2 + took,
            tag,
            pod,
            "Pulled",
            f'Successfully pulled image "{image}" in '
            f"{took:.3f}s ({took:.3f}s including waiting). Image size: "
            f"{draw_int(rng, 90, 400) * 1_048_576} bytes.",
            **normal,
        )
        run.pod_event(
            t + 2.5 + took, tag, pod, "Created", f"Created container: {service}", **normal
        )
        run.pod_event(t + 3 + took, tag, pod, "Started", f"Started container {service}", **normal)
        pods.append(pod)
    return pods


def startup(run: Run, t: float, tag: str | None, pod: Pod, version: str) -> None:
    """The line a service's process writes when it has started."""
    if pod.style == "java":
        run.log(
            t,
            tag,
            pod,
            "INFO",
            f"Started CheckoutApplication v{version} in "
            f"{run.rng.uniform(6, 9):.3f} seconds (process running for 9.1)",
            "c.s.checkout.CheckoutApplication",
        )
    elif pod.style == "go":
        run.log(t, tag, pod, "INFO", f'msg="listening" addr=:8443 version={version}')
    elif pod.style == "python":
        run.log(
            t,
            tag,
            pod,
            "INFO",
            f"Booting worker with pid: {draw_int(run.rng, 7, 40)}",
            style="gunicorn",
        )
    else:
        run.log(
            t,
            tag,
            pod,
            "INFO",
            "server listening",
            pino_fields(port=3000, version=version),
            container="web",
        )
