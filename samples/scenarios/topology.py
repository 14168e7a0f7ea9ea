"""The shop the scenarios run in: services, their call graph, pods and nodes.

frontend -> checkout -> payments -> postgres, checkout -> inventory -> redis/postgres, and
a report-generator cron job; pods are spread round-robin over three nodes.

Example:
    ```python
    import random

    from samples.scenarios.topology import build_topology

    topo = build_topology(random.Random("topology:0"))
    print([pod.name for pod in topo.pods["checkout"]], topo.callers["payments"])
    ```
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from samples.scenarios.draw import draw_int, pick

NAMESPACE = "shop"
NS = [f"namespace:{NAMESPACE}"]  # the ``related`` of service-level events

# service -> the services it calls (a run's ``dependencies``)
DEPENDENCIES: dict[str, list[str]] = {
    "frontend": ["checkout"],
    "checkout": ["payments", "inventory"],
    "payments": ["postgres"],
    "inventory": ["redis", "postgres"],
    "postgres": [],
    "redis": [],
    "report-generator": ["postgres"],
}
# service -> (replicas, log style, port, version); postgres and redis are StatefulSets
SERVICES: dict[str, tuple[int, str, int, str]] = {
    "frontend": (3, "node", 3000, "5.2.0"),
    "checkout": (2, "java", 8080, "2.14.3"),
    "payments": (2, "go", 8443, "1.31.0"),
    "inventory": (2, "python", 8000, "3.8.1"),
    "postgres": (1, "postgres", 5432, "16.2"),
    "redis": (1, "redis", 6379, "7.2.4"),
}
APPS = ("checkout", "payments", "inventory")  # where rollouts, leaks, stalls and certs fail
NODES = tuple(f"ip-10-0-{n}.eu-west-1.compute.internal" for n in ("1-23", "2-47", "3-91"))
REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop"
_HASH_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of Kubernetes generated names


@dataclass(frozen=True)
class Pod:
    name: str
    service: str
    node: str
    ip: str
    style: str  # the log dialect (``samples.scenarios.dialects``)
    namespace: str = NAMESPACE

    @property
    def entity(self) -> str:
        return f"pod:{self.name}"

    @property
    def related(self) -> list[str]:
        return [f"service:{self.service}", f"node:{self.node}", f"namespace:{self.namespace}"]


@dataclass
class Topology:
    pods: dict[str, list[Pod]]
    callers: dict[str, list[str]]

    def on_node(self, node: str) -> list[Pod]:
        return [p for pods in self.pods.values() for p in pods if p.node == node]


def name_suffix(rng: random.Random, n: int) -> str:
    """A Kubernetes generated-name suffix of ``n`` characters."""
    return "".join(pick(rng, _HASH_CHARS) for _ in range(n))


def new_pod(
    rng: random.Random, name: str, service: str, node: str, style: str, namespace: str = NAMESPACE
) -> Pod:
    subnet = node.split("-")[3]  # ip-10-0-<subnet>-<host>
    return Pod(name, service, node, f"10.0.{subnet}.{draw_int(rng, 10, 250)}", style, namespace)


def build_topology(rng: random.Random) -> Topology:
    """Pods of each service, spread round-robin over the nodes from a seeded offset."""
    pods: dict[str, list[Pod]] = {}
    slot = draw_int(rng, len(NODES))
    for service, (replicas, style, _port, _version) in SERVICES.items():
        replica_set = name_suffix(rng, 10)
        pods[service] = []
        for k in range(replicas):
            node = NODES[slot % len(NODES)]
            slot += 1
            if service in ("postgres", "redis"):  # StatefulSet pods are numbered
                name = f"{service}-{k}"
            else:
                name = f"{service}-{replica_set}-{name_suffix(rng, 5)}"
            pods[service].append(new_pod(rng, name, service, node, style))
    callers: dict[str, list[str]] = {s: [] for s in DEPENDENCIES}
    for caller, callees in DEPENDENCIES.items():
        for callee in callees:
            callers[callee].append(caller)
    return Topology(pods, callers)
