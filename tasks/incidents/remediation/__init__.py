"""Remediation suggestions for an incident, from a data-driven rule library.

Each :class:`Rule` (``rules``) says which evidence it looks for (``Match`` clauses:
signal kinds, entity types, keywords in a signal's title / template / cluster label /
evidence, metric names) and whether it needs a recent ``deploy``; an ``action`` names
the function (``commands``) that turns the matched evidence into exact commands.
``suggest`` (``ranking``) runs every rule over an incident's signals and returns the
suggestions ranked: rule priority, then the strength of the evidence (sum of matched
scores), then lower risk, then the rule's own order. Keywords match text only (title,
template, cluster label, textual evidence), never numbers; metric clauses can require
the metric to have gone up (``evidence``).

Nothing here executes anything: the ``remediate`` flow may run a suggestion only if it
is ``automatable`` (a low-risk rollback / restart / scale of a Deployment, see
``tasks.incidents.k8s_actions.plan_action``) and a person approved it.

Names come from the signals: the deployment of a pod is its ``service:<name>``
(``related``) or, failing that, the pod name minus its ReplicaSet and pod hashes; the
namespace is the ``namespace:<name>`` a signal of that service carries (else
``default``); workloads are assumed to be Deployments (what ``tasks.incidents.k8s_actions``
acts on). When a value a command needs is not in the evidence (a memory limit, a
database's ``max_connections``), the command uses a stated default and the
prerequisites say how to confirm it.

Example:
    ```python
    from datetime import UTC, datetime, timedelta

    from tasks.incidents.correlation import correlate
    from tasks.incidents.remediation import suggest
    from tasks.incidents.signals import AnomalySignal

    t0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    deploy = AnomalySignal(id="deploy:1", kind="deploy", source="kubernetes",
                           entity="service:checkout", related=["namespace:shop"], start=t0,
                           end=t0, score=0.2, severity="info", title="Deploy checkout v2")
    crash = AnomalySignal(id="k8s:1", kind="k8s_warning", source="kubernetes",
                          entity="pod:checkout-7d9f-abcde",
                          related=["service:checkout", "namespace:shop"],
                          start=t0 + timedelta(minutes=2), end=t0 + timedelta(minutes=5),
                          score=0.9, severity="warning",
                          title="CrashLoopBackOff on pod:checkout-7d9f-abcde")
    incident = correlate([deploy, crash])[0]
    print(suggest(incident, [deploy, crash])[0].command)
    # kubectl rollout undo deployment/checkout -n shop
    ```
"""

from tasks.incidents.remediation.evidence import format_quantity, parse_quantity
from tasks.incidents.remediation.ranking import suggest
from tasks.incidents.remediation.rules import RULES, Match, Rule

__all__ = ["RULES", "Match", "Rule", "format_quantity", "parse_quantity", "suggest"]
