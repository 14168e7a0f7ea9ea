"""Remediation suggestions for an incident, from a data-driven rule library.

Each :class:`Rule` says which evidence it looks for (``Match`` clauses: signal kinds,
entity types, keywords in a signal's title / template / cluster label / evidence,
metric names) and whether it needs a recent ``deploy``; an ``action`` names the
function that turns the matched evidence into exact commands. ``suggest`` runs every
rule over an incident's signals and returns the suggestions ranked: rule priority, then
the strength of the evidence (sum of matched scores), then lower risk, then the rule's
own order. Keywords match text only (title, template, cluster label, textual evidence),
never numbers; metric clauses can require the metric to have gone up.

Nothing here executes anything: the ``remediate`` flow may run a suggestion only if it
is ``automatable`` (a low-risk rollback / restart / scale of a Deployment, see
``tasks.incidents.k8s_actions.plan_action``) and a person approved it.

Names come from the signals: the deployment of a pod is its ``service:<name>``
(``related``) or, failing that, the pod name minus its ReplicaSet and pod hashes; the
namespace is the ``namespace:<name>`` a signal of that service carries (else
``default``); workloads are assumed to be Deployments (what ``tasks.incidents.k8s_actions`` acts
on). When a value a command needs is not in the evidence (a memory limit, a
database's ``max_connections``), the command uses a stated default and the
prerequisites say how to confirm it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from tasks.incidents.correlation import entity_name, entity_type
from tasks.incidents.signals import AnomalySignal, Incident, Suggestion
from tasks.telemetry.entities import service_from_pod_name

RISK_ORDER = {"low": 0, "medium": 1, "high": 2}
POSTGRES_DEFAULT_MAX_CONNECTIONS = 100
MYSQL_DEFAULT_MAX_CONNECTIONS = 151
DEPLOY_LOOKBACK_SECONDS = 10 * 60  # a deploy this long before the incident still counts
# evidence keys that are the detector's bookkeeping, not text about the failure
_NOT_TEXT = frozenset(
    {"corroborated_by", "first_seen", "last_seen", "dashboard_uid", "annotation_id", "issue"}
)
_ROLLBACK = re.compile(r"\broll(ed)?[- ]?back\b|\brevert", re.IGNORECASE)
_QUANTITY = re.compile(r"^\s*(?P<num>\d+(?:\.\d+)?)\s*(?P<unit>[KMGTE]i?|k|m)?\s*$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Ei": 2**60}
_DECIMAL = {"k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "E": 10**18}


# ---------------------------------------------------------------------- the rule model


@dataclass(frozen=True)
class Match:
    """One way a signal can support a rule; every given field must hold."""

    keywords: tuple[str, ...] = ()  # regexes, case-insensitive, over the signal's text
    metrics: tuple[str, ...] = ()  # regexes over the metric name (evidence "metric")
    kinds: tuple[str, ...] = ()
    entity_types: tuple[str, ...] = ()
    rising: bool = False  # the metric went up

    def __call__(self, sig: AnomalySignal) -> bool:
        if self.kinds and sig.kind not in self.kinds:
            return False
        if self.entity_types and entity_type(sig.entity) not in self.entity_types:
            return False
        if self.metrics:
            name = metric_name(sig)
            if not name or not any(re.search(p, name, re.IGNORECASE) for p in self.metrics):
                return False
        if self.rising and not rising(sig):
            return False
        if self.keywords:
            text = signal_text(sig)
            if not any(re.search(p, text, re.IGNORECASE) for p in self.keywords):
                return False
        return bool(self.keywords or self.metrics or self.kinds or self.entity_types)


@dataclass(frozen=True)
class Rule:
    """A remediation rule: evidence to look for, and the action it suggests."""

    id: str
    type: str
    action: str  # key of ACTIONS
    matches: tuple[Match, ...]
    risk: str
    automatable: bool
    priority: int
    prerequisites: tuple[str, ...] = ()
    needs_deploy: bool = False
    unless: tuple[str, ...] = ()  # rule ids that make this one redundant when they match


@dataclass
class Context:
    """An incident's evidence, indexed for the action builders."""

    incident: Incident
    signals: list[AnomalySignal]  # the incident's, non-deploy
    deploys: list[AnomalySignal]  # on the incident or shortly before it
    namespaces: dict[str, str] = field(default_factory=dict)  # service -> namespace

    def namespace(self, service: str) -> str:
        return self.namespaces.get(service, "default")

    def root_signal(self) -> AnomalySignal | None:
        wanted = self.incident.root_cause_signal
        return next((s for s in self.signals if s.id == wanted), None)

    def root_service(self) -> str | None:
        root = self.root_signal()
        if root is not None and (svc := service_of(root)):
            return svc
        rc = self.incident.root_cause
        return entity_name(rc) if rc and entity_type(rc) == "service" else None


Built = tuple[str, str, list[str], str]  # target, command, extra prerequisites, extra reason
Action = Callable[[Context, list[AnomalySignal]], list[Built]]


# ---------------------------------------------------------------------- signal helpers


def signal_text(sig: AnomalySignal) -> str:
    """What a keyword may match: title, template, cluster label and the evidence's text
    values (a reason, a metric name); never numbers or the detector's bookkeeping."""
    parts = [sig.title, sig.template or "", sig.cluster_label or ""]
    parts += [
        v for k, v in sorted(sig.evidence.items()) if isinstance(v, str) and k not in _NOT_TEXT
    ]
    return " ".join(parts)


def rising(sig: AnomalySignal) -> bool:
    """Whether a metric signal went up (evidence ``direction`` / sign of its z-score)."""
    direction = str(sig.evidence.get("direction", "")).lower()
    if direction:
        return direction in ("up", "rising", "high", "increase")
    for key in ("peak_z", "z", "zscore"):
        if isinstance(sig.evidence.get(key), float | int):
            return float(sig.evidence[key]) > 0
    return bool(re.search(r"\b(up|climbing|rising|increas\w*)\b", sig.title, re.IGNORECASE))


def metric_name(sig: AnomalySignal) -> str | None:
    """The metric behind a metric signal (evidence ``metric``), else None."""
    name = sig.evidence.get("metric")
    return str(name) if name is not None else None


def service_of(sig: AnomalySignal) -> str | None:
    """The service (= Deployment name) a signal is about, if it can be told."""
    for ent in [sig.entity, *sorted(sig.related)]:
        if entity_type(ent) == "service":
            return entity_name(ent)
    if deployment := sig.evidence.get("deployment"):
        return str(deployment)
    if entity_type(sig.entity) == "pod":
        pod = entity_name(sig.entity)
        guess = service_from_pod_name(pod)
        return guess if guess != pod else None
    return None


def node_of(sig: AnomalySignal) -> str | None:
    for ent in [sig.entity, *sorted(sig.related)]:
        if entity_type(ent) in ("node", "host"):
            return ent
    return None


def parse_quantity(text: str) -> int | None:
    """Bytes of a Kubernetes memory quantity (``"512Mi"``, ``"1G"``, ``"536870912"``)."""
    match = _QUANTITY.match(str(text))
    if not match:
        return None
    unit = match.group("unit") or ""
    num = float(match.group("num"))
    if unit == "m":  # milli-bytes: legal, absurd
        return int(num / 1000)
    return int(num * (_BINARY.get(unit) or _DECIMAL.get(unit) or 1))


def format_quantity(nbytes: int) -> str:
    """The shortest exact binary form, rounded up to whole MiB: ``"1Gi"``, ``"768Mi"``."""
    mib = math.ceil(nbytes / 2**20)
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def _top_titles(sigs: Iterable[AnomalySignal], n: int = 3) -> str:
    ranked = sorted(sigs, key=lambda s: (-s.score, s.start, s.id))[:n]
    return "; ".join(f"{s.title!r} ({s.source}, score {s.score:.2f})" for s in ranked)


def _first(sigs: Iterable[AnomalySignal], key: str) -> str | None:
    for sig in sigs:
        if key in sig.evidence:
            return str(sig.evidence[key])
    return None


# ---------------------------------------------------------------------- actions


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
        container = _first(mine, "container") or next(
            (entity_name(e) for s in mine for e in s.entities() if entity_type(e) == "container"),
            svc,
        )
        limit = _first(mine, "memory_limit") or _first(mine, "limit")
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
    known = _first(matched, "max_connections")
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
        replicas = _first([s for s in ctx.signals if service_of(s) == svc], "replicas")
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
    cert = _first(matched, "certificate") or _first(matched, "secret")
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


def _investigate(ctx: Context, matched: list[AnomalySignal]) -> list[Built]:
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

# ---------------------------------------------------------------------- the library

CRASH = (r"crashloopbackoff", r"back-?off restarting", r"exit code [1-9]")
K8S_BACKOFF = Match(keywords=(r"\bback-?off\b",), kinds=("k8s_warning",))  # the event reason
HTTP_5XX = (
    r"\b(http|status|code)[ =:/]*5\d\d\b",
    r"\b5\d\d (error|internal|bad gateway|service unavailable|gateway time)",
    r"5xx",
    r"internal server error",
    r"bad gateway",
    r"service unavailable",
    r"error rate",
)
POOL = (
    r"too many connections",
    r"too many clients",
    r"remaining connection slots",
    r"connection pool",
    r"pool (is )?exhausted",
    r"queuepool limit",
    r"(timed out|timeout) (waiting for|acquiring|obtaining) (a )?connection",
    r"could not (obtain|acquire) (a )?connection",
    r"max_connections",
)
TIMEOUT = (
    r"timed? ?out",
    r"deadline exceeded",
    r"\b504\b",
    r"gateway time-?out",
    r"upstream (connect )?(error|timeout)",
    r"circuit ?breaker",
)
CERT = (
    r"certificate (has )?expired",
    r"x509",
    r"certificate verify failed",
    r"tls handshake",
    r"ssl.*certificate",
    r"cert(ificate)? .*expir",
)
DISK = (
    r"no space left on device",
    r"disk (is )?full",
    r"disk ?pressure",
    r"ephemeral-storage",
    r"filesystem .*(full|usage)",
    r"free ?storage ?space",
)

RULES: tuple[Rule, ...] = (
    Rule(
        id="crashloop-after-rollout",
        type="rollback",
        action="rollback",
        matches=(
            Match(keywords=CRASH),
            K8S_BACKOFF,
            Match(keywords=HTTP_5XX),
            Match(metrics=(r"5xx|error",), rising=True),
        ),
        risk="low",
        automatable=True,
        priority=100,
        prerequisites=("the previous revision was healthy", "no irreversible migration ran"),
        needs_deploy=True,
    ),
    Rule(
        id="certificate-expiry",
        type="renew_certificate",
        action="renew",
        matches=(Match(keywords=CERT),),
        risk="medium",
        automatable=False,
        priority=95,
    ),
    Rule(
        id="oom-killed",
        type="raise_memory_limit",
        action="memory",
        matches=(
            Match(keywords=(r"oomkill", r"out of memory", r"outofmemoryerror", r"oom-kill")),
            Match(metrics=(r"mem",), kinds=("metric_zscore",), rising=True),
        ),
        risk="medium",
        automatable=False,
        priority=90,
        prerequisites=("memory grows with load, not a leak (a leak needs a fix, not a limit)",),
    ),
    Rule(
        id="disk-full",
        type="free_disk",
        action="free_disk",
        matches=(Match(keywords=DISK), Match(metrics=(r"disk|filesystem|fs_",), rising=True)),
        risk="high",
        automatable=False,
        priority=85,
    ),
    Rule(
        id="connection-pool-exhaustion",
        type="raise_pool",
        action="raise_pool",
        matches=(Match(keywords=POOL),),
        risk="medium",
        automatable=False,
        priority=80,
        prerequisites=("the database has memory for the extra connections",),
    ),
    Rule(
        id="connection-pool-scale-callers",
        type="scale",
        action="scale_callers",
        matches=(Match(keywords=POOL),),
        risk="medium",
        automatable=False,
        priority=75,
    ),
    Rule(
        id="node-cpu-noisy-neighbour",
        type="drain",
        action="drain",
        matches=(
            Match(metrics=(r"cpu",), entity_types=("node", "host"), rising=True),
            Match(keywords=(r"cpu ?throttl", r"cpu saturation", r"load average")),
        ),
        risk="medium",
        automatable=False,
        priority=70,
        prerequisites=("the other nodes have spare CPU for the evicted pods",),
    ),
    Rule(
        id="upstream-timeouts",
        type="restart",
        action="restart_upstream",
        matches=(Match(keywords=TIMEOUT),),
        risk="low",
        automatable=True,
        priority=60,
        prerequisites=("the upstream has more than one replica (a restart is rolling)",),
        unless=("connection-pool-exhaustion", "certificate-expiry", "crashloop-after-rollout"),
    ),
    Rule(
        id="upstream-timeouts-investigate",
        type="investigate",
        action="circuit",
        matches=(Match(keywords=TIMEOUT),),
        risk="low",
        automatable=False,
        priority=30,
        unless=("connection-pool-exhaustion", "certificate-expiry", "crashloop-after-rollout"),
    ),
    Rule(
        id="crashloop-no-rollout",
        type="investigate",
        action="logs",
        matches=(Match(keywords=CRASH), K8S_BACKOFF),
        risk="low",
        automatable=False,
        priority=40,
        unless=("crashloop-after-rollout", "oom-killed"),
    ),
)


# ---------------------------------------------------------------------- suggest


def _context(incident: Incident, signals: Sequence[AnomalySignal]) -> Context:
    by_id = {s.id: s for s in signals}
    mine = [by_id[i] for i in incident.signals if i in by_id]
    events = [s for s in mine if s.kind != "deploy"]
    touched = {svc for s in events if (svc := service_of(s))}
    deploys = [s for s in mine if s.kind == "deploy"]
    for sig in signals:  # a recent deploy of a touched service, even if not attached
        lag = (incident.start - sig.start).total_seconds()
        if (
            sig.kind == "deploy"
            and sig not in deploys
            and service_of(sig) in touched
            and 0 <= lag <= DEPLOY_LOOKBACK_SECONDS
        ):
            deploys.append(sig)
    namespaces: dict[str, str] = {}
    for sig in [*mine, *signals]:
        svc = service_of(sig)
        ns = next((entity_name(e) for e in sig.entities() if entity_type(e) == "namespace"), None)
        ns = ns or (str(sig.evidence["namespace"]) if "namespace" in sig.evidence else None)
        if svc and ns:
            namespaces.setdefault(svc, ns)
    return Context(incident, events, deploys, namespaces)


def _reason(rule: Rule, matched: list[AnomalySignal], extra: str) -> str:
    return f"{rule.id}: {extra}; evidence: {_top_titles(matched)}"


def suggest(
    incident: Incident, signals: Sequence[AnomalySignal], rules: Sequence[Rule] = RULES
) -> list[Suggestion]:
    """Ranked remediation suggestions for one incident; executes nothing.

    Args:
        incident: from ``tasks.incidents.correlation.correlate``.
        signals: the run's signals (the incident's are looked up by id; other ``deploy``
            signals of its services up to 10 minutes before it count as recent).
        rules: the rule library (default ``RULES``).

    Returns:
        Suggestions, best first: rule priority, evidence strength, lower risk, then the
        rule's own order (e.g. the root-cause service's rollout first). When no
        rule matches, one ``investigate`` suggestion on the root cause.

    Example:
        ```python
        for inc in incidents:
            inc.suggestions = suggest(inc, signals)
        ```
    """
    ctx = _context(incident, signals)
    matched_rules: dict[str, list[AnomalySignal]] = {}
    for rule in rules:
        if rule.action not in ACTIONS:
            raise ValueError(f"rules: {rule.id!r} has unknown action {rule.action!r}")
        hits = [s for s in ctx.signals if any(m(s) for m in rule.matches)]
        if hits and (ctx.deploys or not rule.needs_deploy):
            matched_rules[rule.id] = hits
    ranked: list[tuple[tuple, Suggestion]] = []
    for rule in rules:
        hits = matched_rules.get(rule.id)
        if not hits or any(other in matched_rules for other in rule.unless):
            continue
        strength = sum(s.score for s in hits)
        for order, (target, command, prereq, extra) in enumerate(ACTIONS[rule.action](ctx, hits)):
            sug = Suggestion(
                rule=rule.id,
                type=rule.type,  # type: ignore[arg-type]
                target=target,
                command=command,
                risk=rule.risk,  # type: ignore[arg-type]
                automatable=rule.automatable,
                prerequisites=[*prereq, *rule.prerequisites],
                reason=_reason(rule, hits, extra),
            )
            key = (-rule.priority, -strength, RISK_ORDER[rule.risk], order)
            ranked.append((key, sug))
    if not ranked:
        for target, command, prereq, extra in _investigate(ctx, ctx.signals):
            sug = Suggestion(
                rule="investigate-root-cause",
                type="investigate",
                target=target,
                command=command,
                risk="low",
                automatable=False,
                prerequisites=prereq,
                reason=f"{extra}; evidence: {_top_titles(ctx.signals)}",
            )
            ranked.append(((0,), sug))
    seen: set[tuple[str, str]] = set()
    out = []
    for _key, sug in sorted(ranked, key=lambda pair: pair[0]):
        if (sug.type, sug.command) not in seen:
            seen.add((sug.type, sug.command))
            out.append(sug)
    return out
