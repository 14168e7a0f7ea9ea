"""Command builders: each rule's ``action`` turns the matched signals into exact commands.

Each builder returns ``(target, command, extra prerequisites, extra reason)`` tuples;
``ACTIONS`` maps a rule's ``action`` name to its builder. Nothing is executed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

from tasks.incidents.remediation.evidence import (
    Context,
    first_evidence,
    format_quantity,
    metric_name,
    node_of,
    parse_quantity,
    rising,
    service_of,
    signal_text,
)
from tasks.incidents.signals import AnomalySignal, entity_name, entity_type

POSTGRES_DEFAULT_MAX_CONNECTIONS = 100
MYSQL_DEFAULT_MAX_CONNECTIONS = 151
_ROLLBACK = re.compile(r"\broll(ed)?[- ]?back\b|\brevert", re.IGNORECASE)

Built = tuple[str, str, list[str], str]  # target, command, extra prerequisites, extra reason
Action = Callable[[Context, list[AnomalySignal]], list[Built]]


def _rollback(ctx: Context, matched: list[AnomalySignal]) -> list[Built]:
    """Undo the rollout that preceded the errors: the root-cause service's first, then
    the service with the most matching errors. A deploy that is itself a rollback is
    a recovery, not a cause."""
    first_error = max(s.start for s in matched)
    hits = Counter(service_of(s) for s in matched)
    root = ctx.root_service()
    candidates = [
        d
        for d in ctx.deploys
        if (svc := service_of(d))
        and (hits[svc] or svc in {service_of(s) for s in ctx.signals})
        and d.start <= first_error
        and not _ROLLBACK.search(signal_text(d))
    ]
    candidates.sort(
        key=lambda d: (service_of(d) != root, -hits[service_of(d)], -d.start.timestamp())
    )
    out: list[Built] = []
    for dep in candidates:
        svc = service_of(dep)
        if any(b[0] == f"deployment:{svc}" for b in out):
            continue
        ns = ctx.namespace(svc)
        after = [s.start for s in matched if s.start >= dep.start] or [first_error]
        lag = (min(after) - dep.start).total_seconds() / 60
        out.append(
            (
                f"deployment:{svc}",
                f"kubectl rollout undo deployment/{svc} -n {ns}",
                [f"kubectl rollout history deployment/{svc} -n {ns} shows an earlier revision"],
                f"rollout {dep.title!r} at {dep.start:%H:%M:%S}, {lag:.0f} min before the errors",
            )
        )
    return out


def _deployments(ctx: Context, matched: list[AnomalySignal]) -> list[tuple[str, str]]:
    services = sorted({svc for s in matched if (svc := service_of(s))})
    return [(svc, ctx.namespace(svc)) for svc in services]


def _logs(ctx: Context, matched: list[AnomalySignal]) -> list[Built]:
    return [
        (
            f"deployment:{svc}",
            f"kubectl logs deployment/{svc} -n {ns} --previous --tail=200",
            [],
            "no rollout precedes the crashes: read why the container exits",
        )
        for svc, ns in _deployments(ctx, matched)
    ]


def _memory(ctx: Context, matched: list[AnomalySignal]) -> list[Built]:
    out = []
    for svc, ns in _deployments(ctx, matched):
        mine = [s for s in matched if service_of(s) == svc]
        container = first_evidence(mine, "container") or next(
            (entity_name(e) for s in mine for e in s.entities() if entity_type(e) == "container"),
            svc,
        )
        limit = first_evidence(mine, "memory_limit") or first_evidence(mine, "limit")
        nbytes = parse_quantity(limit) if limit else None
        peaks = [
            float(s.evidence["peak_value"])
            for s in ctx.signals
            if service_of(s) == svc
            and re.search("mem", metric_name(s) or "", re.IGNORECASE)
            and isinstance(s.evidence.get("peak_value"), float | int)
            and rising(s)
        ]
        prereq = [f"the nodes have {'2x the limit' if nbytes else 'room for the new limit'} free"]
        if nbytes:
            new, why = format_quantity(2 * nbytes), f"current limit {limit}, doubled"
        elif peaks:
            peak = format_quantity(int(max(peaks)))
            new, why = format_quantity(int(2 * max(peaks))), f"usage peaked at {peak}, doubled"
        else:
            new, why = "<2x current limit>", "current limit not in the evidence"
            prereq.insert(
                0,
                f"read the current limit: kubectl get deployment/{svc} -n {ns} -o jsonpath="
                f'\'{{.spec.template.spec.containers[?(@.name=="{container}")]'
                ".resources.limits.memory}'",
            )
        cmd = f"kubectl set resources deployment/{svc} -n {ns} -c {container} --limits=memory={new}"
        out.append((f"deployment:{svc}", cmd, prereq, why))
    return out


def _database(ctx: Context, matched: list[AnomalySignal]) -> tuple[str, str]:
    """The exhausted database's entity and engine (postgres unless it says MySQL)."""
    ents = [e for s in [*matched, *ctx.signals] for e in sorted(s.entities())]
    named = [e for e in ents if re.search(r"postgres|mysql|maria|db", entity_name(e))]
    db = next((e for e in ents if entity_type(e) == "database"), None)
    db = db or next((e for e in named if entity_type(e) == "service"), None)
    db = db or next(iter(named), None) or ctx.incident.root_cause or "database:unknown"
    text = " ".join(signal_text(s) for s in matched) + " " + db
    engine = "mysql" if re.search(r"mysql|maria", text, re.IGNORECASE) else "postgres"
    return db, engine


def _raise_pool(ctx: Context, matched: list[AnomalySignal]) -> list[Built]:
    db, engine = _database(ctx, matched)
    known = first_evidence(matched, "max_connections")
    if engine == "mysql":
        current = int(float(known)) if known else MYSQL_DEFAULT_MAX_CONNECTIONS
        cmd = f'mysql -h {entity_name(db)} -u root -e "SET GLOBAL max_connections = {2 * current}"'
        prereq = ["confirm the current value: SHOW VARIABLES LIKE 'max_connections'"]
        prereq.append("persist it in my.cnf ([mysqld] max_connections) or it is lost on restart")
    else:
        current = int(float(known)) if known else POSTGRES_DEFAULT_MAX_CONNECTIONS
        cmd = (
            f"psql -h {entity_name(db)} -U postgres -c "
            f'"ALTER SYSTEM SET max_connections = {2 * current}"'
        )
        prereq = ["confirm the current value: SHOW max_connections"]
        prereq.append("restart postgres afterwards (max_connections needs a restart)")
    why = f"max_connections {current}{'' if known else ' (default, assumed)'} -> {2 * current}"
    return [(db, cmd, prereq, why)]


def _scale_callers(ctx: Context, matched: list[AnomalySignal]) -> list[Built]:
    db, _ = _database(ctx, matched)
    out = []
    for svc, ns in _deployments(ctx, matched):
        if f"service:{svc}" == db or entity_name(db) == svc:
            continue
        pods = {e for s in ctx.signals if service_of(s) == svc for e in s.entities()}
        seen = sum(1 for e in pods if entity_type(e) == "pod")
        replicas = first_evidence([s for s in ctx.signals if service_of(s) == svc], "replicas")
        current = int(float(replicas)) if replicas else max(seen, 1)
        target = max(1, current // 2)
        if target >= current:
            continue
        out.append(
            (
                f"deployment:{svc}",
                f"kubectl scale deployment/{svc} -n {ns} --replicas={target}",
                [f"the remaining {target} replica(s) can carry the traffic"],
                f"each of {current} replicas holds its own pool against {db}",
            )
        )
    return out


def _drain(ctx: Context, matched: list[AnomalySignal]) -> list[Built]:
    nodes = Counter(n for s in matched if (n := node_of(s)))
    out = []
    for node, _count in nodes.most_common(1):
        name = entity_name(node)
        out.append(
            (
                node,
                f"kubectl cordon {name} && kubectl drain {name} --ignore-daemonsets "
                "--delete-emptydir-data --timeout=5m",
                [
                    f"find the noisy pod first: kubectl get pods -A -o wide "
                    f"--field-selector spec.nodeName={name}, then kubectl top pod",
                    "PodDisruptionBudgets allow the evictions",
                ],
                f"CPU saturation on {node}",
            )
        )
    return out


def _restart_upstream(ctx: Context, matched: list[AnomalySignal]) -> list[Built]:
    svc = ctx.root_service()
    if not svc:
        return []
    ns = ctx.namespace(svc)
    return [
        (
            f"deployment:{svc}",
            f"kubectl rollout restart deployment/{svc} -n {ns}",
            [],
            f"{svc} is the most upstream affected service (root cause)",
        )
    ]


def _circuit(ctx: Context, matched: list[AnomalySignal]) -> list[Built]:
    svc = ctx.root_service()
    if not svc:
        return []
    ns = ctx.namespace(svc)
    return [
        (
            f"service:{svc}",
            f"kubectl logs deployment/{svc} -n {ns} --since=30m --tail=500",
            [],
            "callers time out on it: check its latency, saturation and circuit breakers",
        )
    ]


def _free_disk(ctx: Context, matched: list[AnomalySignal]) -> list[Built]:
    targets = Counter(n for s in matched if (n := node_of(s)))
    out = []
    for node, _count in targets.most_common(1):
        name = entity_name(node)
        if entity_type(node) == "node":
            cmd = (
                f"kubectl debug node/{name} -it --image=busybox -- chroot /host sh -c "
                "'df -h; crictl rmi --prune; journalctl --vacuum-size=500M'"
            )
        else:
            cmd = f"ssh {name} 'df -h; sudo journalctl --vacuum-size=500M'"
        out.append((node, cmd, [], f"disk full on {node}"))
    return out


def _renew(ctx: Context, matched: list[AnomalySignal]) -> list[Built]:
    cert = first_evidence(matched, "certificate") or first_evidence(matched, "secret")
    svc = ctx.root_service() or next((s for m in matched if (s := service_of(m))), None)
    if not cert and not svc:
        return []
    cert = cert or f"{svc}-tls"
    ns = ctx.namespace(svc) if svc else "default"
    return [
        (
            f"certificate:{cert}",
            f"kubectl cert-manager renew {cert} -n {ns}",
            [
                f"cert-manager manages it: kubectl get certificate {cert} -n {ns}",
                "its issuer is Ready; without cert-manager, replace the TLS secret with a "
                "renewed certificate (kubectl create secret tls ... | kubectl apply -f -)",
            ],
            "callers fail the TLS handshake with an expired certificate",
        )
    ]


def investigate(ctx: Context, matched: list[AnomalySignal]) -> list[Built]:
    root = ctx.incident.root_cause or (ctx.signals[0].entity if ctx.signals else None)
    if not root:
        return []
    ns = ctx.namespace(entity_name(root))
    kind = {"service": "deployment", "pod": "pod", "node": "node"}.get(entity_type(root))
    cmd = (
        f"kubectl describe {kind}/{entity_name(root)}" + ("" if kind == "node" else f" -n {ns}")
        if kind
        else f"kubectl get events -n {ns} --sort-by=.lastTimestamp"
    )
    return [(root, cmd, [], "no rule matched: start from the root cause")]


ACTIONS: dict[str, Action] = {
    "rollback": _rollback,
    "logs": _logs,
    "memory": _memory,
    "raise_pool": _raise_pool,
    "scale_callers": _scale_callers,
    "drain": _drain,
    "restart_upstream": _restart_upstream,
    "circuit": _circuit,
    "free_disk": _free_disk,
    "renew": _renew,
}
