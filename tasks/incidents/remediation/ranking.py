"""``suggest``: run every rule over an incident's signals and rank what they suggest."""

from __future__ import annotations

from collections.abc import Sequence

from tasks.incidents.remediation.commands import ACTIONS, investigate
from tasks.incidents.remediation.evidence import Context, service_of, top_titles
from tasks.incidents.remediation.rules import RULES, Rule
from tasks.incidents.signals import AnomalySignal, Incident, Suggestion, entity_name, entity_type

RISK_ORDER = {"low": 0, "medium": 1, "high": 2}
DEPLOY_LOOKBACK_SECONDS = 10 * 60  # a deploy this long before the incident still counts


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
    return f"{rule.id}: {extra}; evidence: {top_titles(matched)}"


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
        from samples.scenarios import generate
        from tasks.incidents.pipeline import run_pipeline
        from tasks.incidents.remediation.ranking import suggest

        run = generate(["bad_rollout"], seed=7, lines=5000)
        result = run_pipeline(run.events, run.metrics, dependencies=run.dependencies)
        for incident in result.incidents:
            print([s.command for s in suggest(incident, result.signals)][:1])
        # ['kubectl rollout undo deployment/checkout -n shop']
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
        for target, command, prereq, extra in investigate(ctx, ctx.signals):
            sug = Suggestion(
                rule="investigate-root-cause",
                type="investigate",
                target=target,
                command=command,
                risk="low",
                automatable=False,
                prerequisites=prereq,
                reason=f"{extra}; evidence: {top_titles(ctx.signals)}",
            )
            ranked.append(((0,), sug))
    seen: set[tuple[str, str]] = set()
    out = []
    for _key, sug in sorted(ranked, key=lambda pair: pair[0]):
        if (sug.type, sug.command) not in seen:
            seen.add((sug.type, sug.command))
            out.append(sug)
    return out
