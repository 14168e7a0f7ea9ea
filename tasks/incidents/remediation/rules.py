"""The rule library: which evidence each remediation rule looks for, and what it suggests.

A ``Rule`` holds ``Match`` clauses (every given field of a clause must hold for a
signal to support the rule), its risk, whether it can be automated, its priority and
the name of its command builder (``tasks.incidents.remediation.commands.ACTIONS``).

Example:
    ```python
    from tasks.incidents.remediation.rules import RULES

    print([(r.id, r.priority) for r in RULES][:2])
    # [('crashloop-after-rollout', 100), ('certificate-expiry', 95)]
    ```
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.incidents.remediation.evidence import metric_name, rising, signal_text
from tasks.incidents.signals import AnomalySignal, entity_type


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
