"""Synthetic incident scenarios: realistic multi-source telemetry with known ground truth.

``detect_incidents`` has to do its real job without a cluster, and ``evaluate_incidents``
needs runs where the right answer is known. :func:`generate` builds one: a small shop
(frontend -> checkout -> payments -> postgres, checkout -> inventory -> redis/postgres,
pods spread over three nodes, a cron job) whose telemetry looks the way the sources map
it (``tasks.telemetry.model``): container logs in several styles (Spring Boot, Go logfmt,
Python logging, gunicorn, pino JSON, nginx access/error, postgres, redis), Kubernetes
events and pod states, Sentry issues and error events, CloudWatch alarm state changes
and log events, Grafana deploy annotations, and metric series (Prometheus via Grafana,
metrics-server, CloudWatch).

A run has a baseline half that holds no incident, then plays the requested scenarios one
after another (``overlap=True`` starts the first two together, on different entities).
Noise runs at a constant rate over the whole run, so the incident period has errors that
belong to no incident: an SMTP relay deferring mail, declined cards, a partner webhook
answering 503, a recommendations call that hangs up, duplicate keys in postgres, a flaky
readiness probe, a cron job's warnings, a flapping alarm, benign deploys, an old Sentry
issue that keeps firing and single-sample metric glitches. One failure is worded
differently by each service and source (a timeout is ``SocketTimeoutException: Read timed
out`` in checkout, ``context deadline exceeded`` in payments, ``upstream timed out (110:
...)`` in nginx, ``timeout of 10000ms exceeded`` in the Node frontend), so grouping has to
be semantic, not textual.

:class:`GroundTruth` names, per incident, its scenario, root-cause entity, time span, the
positions of its events in ``Scenario.events`` and the ``(entity, metric)`` series it
moved; every other event is noise. Everything is a function of the seed. Scenarios
(:data:`SCENARIOS`) each leave signals in at least two sources.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np
from pydantic import BaseModel, Field, TypeAdapter, field_serializer

from tasks.common.atomic import write_text_atomic
from tasks.telemetry.model import Event, MetricSeries

DEFAULT_START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NAMESPACE = "shop"
METRIC_STEP = 60  # seconds between metric samples
SLOT_MINUTES = 25  # time given to each incident in the incident period
MIN_INCIDENT_PERIOD_MINUTES = 60  # the baseline is as long as the incident period
MIN_LINES, MAX_LINES = 1_000, 2_000_000

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
_SERVICES: dict[str, tuple[int, str, int, str]] = {
    "frontend": (3, "node", 3000, "5.2.0"),
    "checkout": (2, "java", 8080, "2.14.3"),
    "payments": (2, "go", 8443, "1.31.0"),
    "inventory": (2, "python", 8000, "3.8.1"),
    "postgres": (1, "postgres", 5432, "16.2"),
    "redis": (1, "redis", 6379, "7.2.4"),
}
_APPS = ("checkout", "payments", "inventory")  # where rollouts, leaks, stalls and certs fail
_NODES = tuple(f"ip-10-0-{n}.eu-west-1.compute.internal" for n in ("1-23", "2-47", "3-91"))
_REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop"
_HASH_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of Kubernetes generated names
_SEVERITY = {
    "DEBUG": "debug",
    "INFO": "info",
    "LOG": "info",
    "DETAIL": "info",
    "WARN": "warning",
    "WARNING": "warning",
    "ERROR": "error",
    "FATAL": "critical",
    "CRITICAL": "critical",
    "PANIC": "critical",
}
_PINO_LEVEL = {"INFO": 30, "WARN": 40, "ERROR": 50, "FATAL": 60}
_NS = [f"namespace:{NAMESPACE}"]
T = TypeVar("T")


# --------------------------------------------------------------------------- models


class TrueIncident(BaseModel):
    """One planted incident: what happened, where it started and what it left behind."""

    id: str = Field(description="e.g. 'T1-bad_rollout'")
    scenario: str
    root_cause_entity: str = Field(description='"<type>:<name>", e.g. "service:payments"')
    start: datetime
    end: datetime
    event_indices: set[int] = Field(default_factory=set, description="Positions in events")
    metric_keys: set[tuple[str, str]] = Field(
        default_factory=set, description="(entity, metric) series the incident moved"
    )
    entities: list[str] = Field(default_factory=list, description="Every entity it touched")
    description: str = ""

    @field_serializer("event_indices")
    def _sorted_indices(self, value: set[int]) -> list[int]:
        return sorted(value)

    @field_serializer("metric_keys")
    def _sorted_keys(self, value: set[tuple[str, str]]) -> list[list[str]]:
        return [list(key) for key in sorted(value)]


class GroundTruth(BaseModel):
    """The answer key of a generated run. Events in no incident are noise."""

    incidents: list[TrueIncident]
    start: datetime
    end: datetime
    baseline_end: datetime = Field(description="No incident before this")
    n_events: int
    seed: int
    scenarios: list[str]
    dependencies: dict[str, list[str]] = Field(default_factory=dict)

    @cached_property
    def _labels(self) -> dict[int, str]:
        return {i: inc.id for inc in self.incidents for i in inc.event_indices}

    def labels(self) -> dict[int, str]:
        """Event position -> true incident id (noise events are absent)."""
        return self._labels

    def label_of(self, index: int) -> str | None:
        """The true incident an event belongs to, or None for noise."""
        return self.labels().get(index)

    def incident(self, incident_id: str) -> TrueIncident:
        for inc in self.incidents:
            if inc.id == incident_id:
                return inc
        raise KeyError(incident_id)


@dataclass
class Scenario:
    """A generated run: telemetry (events sorted by time), the answer key, the call graph."""

    events: list[Event]
    metrics: list[MetricSeries]
    truth: GroundTruth
    dependencies: dict[str, list[str]]


class ScenarioPaths(NamedTuple):
    events: Path
    metrics: Path
    truth: Path


# --------------------------------------------------------------------------- helpers


def _int(rng: random.Random, a: int, b: int | None = None) -> int:
    """``randrange`` without its argument checks (this is the generator's hot path)."""
    if b is None:
        a, b = 0, a
    return a + int(rng.random() * (b - a))


def _pick(rng: random.Random, seq: Sequence[T]) -> T:
    """``choice``, faster."""
    return seq[int(rng.random() * len(seq))]


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fields(**extra: object) -> str:
    """The ``logger`` argument that gives a pino (``node`` style) record extra fields."""
    return json.dumps(extra, separators=(",", ":"))


def _bump(version: str, patch: bool = False) -> str:
    major, minor, micro = (int(x) for x in version.split("."))
    return f"{major}.{minor}.{micro + 1}" if patch else f"{major}.{minor + 1}.0"


# values drawn for ``{name}`` placeholders in message templates
_VALUES: dict[str, Callable[[random.Random], object]] = {
    "ip": lambda r: f"10.0.{_int(r, 1, 4)}.{_int(r, 2, 254)}",
    "client": lambda r: f"{_int(r, 31, 223)}.{_int(r, 256)}.{_int(r, 256)}.{_int(r, 1, 255)}",
    "port": lambda r: _int(r, 32768, 61000),
    "order": lambda r: f"ord_{_hex(r, 10)}",
    "cust": lambda r: f"cus_{_hex(r, 8)}",
    "sku": lambda r: f"SKU-{_int(r, 1000, 99999)}",
    "qty": lambda r: _int(r, 1, 6),
    "n": lambda r: _int(r, 1, 13),
    "page": lambda r: _int(r, 1, 40),
    "amount": lambda r: f"{_int(r, 499, 25000) / 100:.2f}",
    "ms": lambda r: _int(r, 3, 180),
    "slow_ms": lambda r: _int(r, 1200, 4800),
    "sec": lambda r: f"{r.uniform(2.5, 9.9):.2f}",
    "reqid": lambda r: _hex(r, 16),
    "trace": lambda r: _hex(r, 32),
    "pid": lambda r: _int(r, 120, 32000),
    "charge": lambda r: f"ch_{_hex(r, 24)}",
    "promo": lambda r: _pick(r, ("SPRING24", "WELCOME10", "FREESHIP", "VIP2025")),
    "bytes": lambda r: _int(r, 180, 48000),
    "buffers": lambda r: _int(r, 40, 9000),
    "pct": lambda r: f"{r.uniform(0.1, 9.5):.1f}",
    "hit": lambda r: f"{r.uniform(91, 99.5):.1f}",
    "email": lambda r: (
        f"{_pick(r, ('anna', 'li', 'omar', 'jo', 'mia'))}{_int(r, 1, 999)}@example.org"
    ),
    "feed": lambda r: _pick(r, ("acme-wholesale", "nordic-supply", "eu-distri")),
    "decline": lambda r: _pick(r, ("insufficient_funds", "card_declined", "expired_card")),
    "uid": lambda r: f"{_hex(r, 8)}-{_hex(r, 4)}-{_hex(r, 4)}-{_hex(r, 4)}-{_hex(r, 12)}",
    "method_path": lambda r: _pick(r, ("GET /api/cart", "POST /api/checkout", "GET /api/session")),
}


class _Fill(dict):
    """``str.format_map`` mapping that draws unnamed values (``{order}``, ``{ms}``) on demand."""

    def __init__(self, rng: random.Random, fixed: dict[str, object]):
        super().__init__(fixed)
        self.rng = rng

    def __missing__(self, key: str) -> object:
        return _VALUES[key](self.rng)


# --------------------------------------------------------------------------- topology


@dataclass(frozen=True)
class _Pod:
    name: str
    service: str
    node: str
    ip: str
    style: str
    namespace: str = NAMESPACE

    @property
    def entity(self) -> str:
        return f"pod:{self.name}"

    @property
    def related(self) -> list[str]:
        return [f"service:{self.service}", f"node:{self.node}", f"namespace:{self.namespace}"]


@dataclass
class _Topology:
    pods: dict[str, list[_Pod]]
    callers: dict[str, list[str]]

    def on_node(self, node: str) -> list[_Pod]:
        return [p for pods in self.pods.values() for p in pods if p.node == node]


def _suffix(rng: random.Random, n: int) -> str:
    return "".join(_pick(rng, _HASH_CHARS) for _ in range(n))


def _new_pod(
    rng: random.Random, name: str, service: str, node: str, style: str, namespace: str = NAMESPACE
) -> _Pod:
    subnet = node.split("-")[3]  # ip-10-0-<subnet>-<host>
    return _Pod(name, service, node, f"10.0.{subnet}.{_int(rng, 10, 250)}", style, namespace)


def _topology(rng: random.Random) -> _Topology:
    """Pods of each service, spread round-robin over the nodes from a seeded offset."""
    pods: dict[str, list[_Pod]] = {}
    slot = _int(rng, len(_NODES))
    for service, (replicas, style, _port, _version) in _SERVICES.items():
        replica_set = _suffix(rng, 10)
        pods[service] = []
        for k in range(replicas):
            node = _NODES[slot % len(_NODES)]
            slot += 1
            stateful = service in ("postgres", "redis")
            name = f"{service}-{k}" if stateful else f"{service}-{replica_set}-{_suffix(rng, 5)}"
            pods[service].append(_new_pod(rng, name, service, node, style))
    callers: dict[str, list[str]] = {s: [] for s in DEPENDENCIES}
    for caller, callees in DEPENDENCIES.items():
        for callee in callees:
            callers[callee].append(caller)
    return _Topology(pods, callers)


def _format_line(
    style: str, dt: datetime, level: str, logger: str, text: str, pod: _Pod, rng: random.Random
) -> str:
    """One log line as the service's stack writes it."""
    ms = dt.microsecond // 1000
    if style == "java":  # Spring Boot 3 console pattern
        thread = "main" if logger.endswith("Application") else f"nio-8080-exec-{_int(rng, 1, 11)}"
        return (
            f"{dt:%Y-%m-%dT%H:%M:%S}.{ms:03d}Z {level:>5} 1 --- [{pod.service}] "
            f"[{thread:>15}] {logger:<40} : {text}"
        )
    if style == "go":  # log/slog TextHandler
        return f"time={dt:%Y-%m-%dT%H:%M:%S}.{ms:03d}Z level={level} {text}"
    if style == "python":
        return f"{dt:%Y-%m-%d %H:%M:%S},{ms:03d} {level} [{logger}] {text}"
    if style == "gunicorn":
        return f"[{dt:%Y-%m-%d %H:%M:%S} +0000] [{_int(rng, 7, 40)}] [{level}] {text}"
    if style == "node":  # pino; ``logger`` carries the extra fields as JSON
        record = {
            "level": _PINO_LEVEL[level],
            "time": int(dt.timestamp() * 1000),
            "pid": 1,
            "hostname": pod.name,
            "msg": text,
        }
        record.update(json.loads(logger) if logger else {})
        return json.dumps(record, separators=(",", ":"))
    if style == "nginx-error":
        return f"{dt:%Y/%m/%d %H:%M:%S} [{level.lower()}] 23#23: *{_int(rng, 1000, 99999)} {text}"
    if style == "postgres":
        return f"{dt:%Y-%m-%d %H:%M:%S}.{ms:03d} UTC [{_int(rng, 100, 9999)}] {level}:  {text}"
    if style == "redis":
        return f"1:M {dt:%d %b %Y %H:%M:%S}.{ms:03d} {'#' if level == 'WARNING' else '*'} {text}"
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{ms:03d}Z {level} {text}"  # plain


# --------------------------------------------------------------------------- the run


@dataclass
class _Series:
    source: str
    related: list[str]
    unit: str
    values: np.ndarray
    first: int = 0  # index of the first sample (series that start mid-run)


@dataclass
class _Incident:
    id: str
    scenario: str
    target: str
    start: float  # seconds from the run start
    length: float
    root_cause: str = ""
    description: str = ""
    metric_keys: set[tuple[str, str]] = field(default_factory=set)
    span: list[float] = field(default_factory=list)  # [first, last] second it touched

    @property
    def end(self) -> float:
        return self.start + self.length


class _Run:
    """Collects events (as dicts, validated once at the end) and metric arrays."""

    def __init__(
        self,
        topo: _Topology,
        seed: int,
        budget: float,
        noise: float,
        start: datetime,
        duration: int,
    ):
        self.topo = topo
        self.rng = random.Random(seed)  # noqa: S311 - synthetic data, not secrets
        self.nrng = np.random.default_rng(seed)
        self.start, self.duration = start, duration
        self.budget, self.noise = budget, noise
        self.rows: list[tuple[float, int, str | None, dict]] = []
        self.incidents: dict[str, _Incident] = {}
        self.series: dict[tuple[str, str], _Series] = {}
        self.n_steps = duration // METRIC_STEP

    # --- time and volume

    def at(self, t: float) -> datetime:
        return self.start + timedelta(seconds=t)

    def rate(self, share: float) -> float:
        """Lines per second of a stream that is ``share`` of the background volume."""
        return share * self.budget / self.duration

    def times(self, t0: float, t1: float, rate: float, minimum: int = 0) -> list[float]:
        """Poisson arrivals in [t0, t1), at least ``minimum`` of them."""
        t1 = min(t1, self.duration - 1)
        if t1 <= t0:
            return []
        n = max(int(self.nrng.poisson(rate * (t1 - t0))), minimum)
        return sorted(self.nrng.uniform(t0, t1, n).tolist())

    # --- events

    def emit(
        self,
        t: float,
        tag: str | None,
        source: str,
        kind: str,
        entity: str,
        related: list[str],
        severity: str,
        message: str,
        attributes: dict[str, str],
        dt: datetime | None = None,
    ) -> None:
        row = {
            "timestamp": dt or self.at(t),
            "source": source,
            "kind": kind,
            "entity": entity,
            "related": related,
            "severity": severity,
            "message": message,
            "attributes": attributes,
        }
        self.rows.append((t, len(self.rows), tag, row))
        if tag is not None:
            self.touch(tag, t, t)

    def touch(self, tag: str, t0: float, t1: float) -> None:
        span = self.incidents[tag].span
        if span:
            span[0], span[1] = min(span[0], t0), max(span[1], t1)
        else:
            span.extend((t0, t1))

    def log(
        self,
        t: float,
        tag: str | None,
        pod: _Pod,
        level: str,
        text: str,
        logger: str = "",
        *,
        style: str | None = None,
        container: str | None = None,
    ) -> None:
        """A container log line of ``pod``; ``text`` is a template (``{order}``, ``{{``)."""
        dt = self.at(t)
        text = text.format_map(_Fill(self.rng, {})) if "{" in text else text
        line = _format_line(style or pod.style, dt, level, logger, text, pod, self.rng)
        attrs = {"container": container or pod.service, "namespace": pod.namespace}
        self.emit(
            t, tag, "kubernetes", "log", pod.entity, pod.related, _SEVERITY[level], line, attrs, dt
        )

    def stream(
        self,
        tag: str | None,
        pods: Sequence[_Pod],
        t0: float,
        t1: float,
        rate: float,
        level: str,
        texts: Sequence[str],
        logger: str = "",
        *,
        minimum: int = 0,
        style: str | None = None,
        container: str | None = None,
    ) -> None:
        """Log lines at Poisson times, each on a random pod with a random template."""
        rng = self.rng
        for t in self.times(t0, t1, rate, minimum):
            self.log(
                t,
                tag,
                _pick(rng, pods),
                level,
                _pick(rng, texts),
                logger,
                style=style,
                container=container,
            )

    def access(
        self,
        t: float,
        tag: str | None,
        method: str,
        path: str,
        status: int,
        rt: float | None = None,
    ) -> None:
        """An nginx access line (combined format + request time) from a frontend pod."""
        rng = self.rng
        pod, dt = _pick(rng, self.topo.pods["frontend"]), self.at(t)
        path = path.format_map(_Fill(rng, {})) if "{" in path else path
        size = _int(rng, 150, 600) if status >= 400 else _int(rng, 180, 48000)
        rt = rng.random() * 0.2 if rt is None else rt
        line = (
            f'{_VALUES["client"](rng)} - - [{dt:%d/%b/%Y:%H:%M:%S} +0000] "{method} {path} '
            f'HTTP/1.1" {status} {size} "https://shop.example.com/" "{_pick(rng, _AGENTS)}" '
            f"{rt:.3f}"
        )
        severity = "error" if status >= 500 else "info"
        attrs = {"container": "nginx", "namespace": pod.namespace}
        self.emit(t, tag, "kubernetes", "log", pod.entity, pod.related, severity, line, attrs, dt)

    def k8s_event(
        self,
        t: float,
        tag: str | None,
        entity: str,
        related: list[str],
        reason: str,
        message: str,
        *,
        warning: bool = True,
        involved: str = "Pod",
        count: int = 1,
        component: str = "kubelet",
    ) -> None:
        attrs = {
            "reason": reason,
            "type": "Warning" if warning else "Normal",
            "involved_kind": involved,
            "count": str(count),
            "component": component,
        }
        severity = "warning" if warning else "info"
        self.emit(t, tag, "kubernetes", "k8s_event", entity, related, severity, message, attrs)

    def pod_event(
        self,
        t: float,
        tag: str | None,
        pod: _Pod,
        reason: str,
        message: str,
        *,
        warning: bool = True,
        count: int = 1,
    ) -> None:
        self.k8s_event(
            t, tag, pod.entity, pod.related, reason, message, warning=warning, count=count
        )

    def pod_state(
        self, t: float, tag: str, pod: _Pod, reason: str, message: str, restarts: int
    ) -> None:
        attrs = {"reason": reason, "restarts": str(restarts), "container": pod.service}
        self.emit(
            t,
            tag,
            "kubernetes",
            "k8s_state",
            pod.entity,
            pod.related,
            "error",
            f"{reason}: {message}",
            attrs,
        )

    def sentry_issue(
        self,
        t: float,
        tag: str | None,
        project: str,
        title: str,
        culprit: str,
        *,
        first_seen: float,
        count: int,
        substatus: str = "new",
    ) -> None:
        digest = hashlib.sha256(f"{project}|{title}".encode()).hexdigest()
        attrs = {
            "issue_id": str(int(digest[:8], 16) + 4_000_000_000),
            "short_id": f"{project.upper()}-{digest[:3].upper()}",
            "project": project,
            "status": "unresolved",
            "substatus": substatus,
            "isRegression": str(substatus == "regressed").lower(),
            "level": "error",
            "culprit": culprit,
            "count": str(count),
            "userCount": str(max(1, count // 3)),
            "firstSeen": _iso(self.at(first_seen)),
            "lastSeen": _iso(self.at(t)),
        }
        self.emit(t, tag, "sentry", "issue", f"service:{project}", _NS, "error", title, attrs)

    def sentry_events(
        self,
        tag: str | None,
        project: str,
        title: str,
        culprit: str,
        t0: float,
        t1: float,
        rate: float,
        minimum: int = 0,
    ) -> None:
        for t in self.times(t0, t1, rate, minimum):
            attrs = {"project": project, "culprit": culprit, "event_id": _hex(self.rng, 32)}
            self.emit(
                t, tag, "sentry", "error_event", f"service:{project}", _NS, "error", title, attrs
            )

    def alarm(
        self,
        t: float,
        tag: str | None,
        entity: str,
        name: str,
        metric: str,
        value: float,
        threshold: float,
        *,
        above: bool = True,
        state: str = "ALARM",
        related: list[str] | None = None,
    ) -> None:
        """A CloudWatch alarm state change, with CloudWatch's own StateReason wording."""
        previous = "OK" if state == "ALARM" else "ALARM"
        stamp = self.at(t - 60).strftime("%d/%m/%y %H:%M:%S")
        reason = (
            f"Threshold Crossed: 1 out of the last 1 datapoints [{value:.1f} ({stamp})] was "
            f"{'greater than' if above else 'less than'} the threshold ({threshold:.1f}) "
            f"(minimum 1 datapoint for {previous} -> {state} transition)."
        )
        attrs = {
            "alarm_name": name,
            "state": state,
            "previous_state": previous,
            "metric_name": metric,
            "region": "eu-west-1",
        }
        self.emit(
            t,
            tag,
            "cloudwatch",
            "alarm",
            entity,
            _NS if related is None else related,
            "error" if state == "ALARM" else "info",
            f"Alarm {name} changed from {previous} to {state}: {reason}",
            attrs,
        )

    def deploy(self, t: float, tag: str | None, service: str, text: str, version: str) -> None:
        """A Grafana deploy annotation."""
        attrs = {
            "tags": f"deploy,argo-cd,{service}",
            "version": version,
            "dashboard_uid": "shop-overview",
            "annotation_id": str(_int(self.rng, 10**4, 10**5)),
        }
        self.emit(t, tag, "grafana", "deploy", f"service:{service}", _NS, "info", text, attrs)

    # --- metrics

    def add_series(
        self,
        entity: str,
        metric: str,
        source: str,
        unit: str,
        level: float,
        related: list[str],
        jitter: float = 0.04,
        first: int = 0,
    ) -> None:
        """A steady series: level, a slow wave, jitter and a few one-sample glitches."""
        n = self.n_steps - first
        wave = 1 + 0.06 * np.sin(2 * np.pi * (np.arange(n) + self.nrng.uniform(0, 240)) / 240)
        values = level * wave * (1 + jitter * self.nrng.standard_normal(n))
        for i in self.nrng.integers(0, n, self.nrng.poisson(self.noise * n / 150)):
            values[i] *= self.nrng.uniform(1.6, 2.4)
        self.series[(entity, metric)] = _Series(source, related, unit, np.maximum(values, 0), first)

    def shape(
        self,
        tag: str,
        entity: str,
        metric: str,
        t0: float,
        t1: float,
        target: float,
        ramp: float = 90,
        jitter: float = 0.05,
    ) -> None:
        """Move the samples in [t0, t1] toward ``target``, ramping in over ``ramp`` seconds."""
        s = self.series[(entity, metric)]
        i0 = max(math.ceil(t0 / METRIC_STEP) - s.first, 0)
        i1 = min(int(t1 // METRIC_STEP) - s.first + 1, len(s.values))
        if i1 <= i0:
            return
        t = (np.arange(i0, i1) + s.first) * METRIC_STEP
        weight = np.clip((t - t0 + METRIC_STEP) / max(ramp, METRIC_STEP), 0, 1)
        moved = target * (1 + jitter * self.nrng.standard_normal(i1 - i0))
        s.values[i0:i1] = (1 - weight) * s.values[i0:i1] + weight * moved
        self.incidents[tag].metric_keys.add((entity, metric))
        self.touch(tag, float(t[0]), float(t[-1]))

    def base(self, entity: str, metric: str) -> float:
        return float(np.median(self.series[(entity, metric)].values))


# --------------------------------------------------------------------------- background

_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    "like Gecko) Version/17.3 Mobile/15E148 Safari/604.1",
    "shop-ios/3.2.1 (iPhone; iOS 17.3; Scale/3.00)",
    "okhttp/4.12.0",
)
_REQUESTS = (
    ("GET", "/"),
    ("GET", "/api/products?page={page}"),
    ("GET", "/api/products/{sku}"),
    ("GET", "/api/cart"),
    ("POST", "/api/cart/items"),
    ("POST", "/api/checkout"),
    ("GET", "/static/js/app.3f9c2e1a.js"),
    ("GET", "/api/session"),
    ("GET", "/healthz"),
)
_OK_STATUS = (200,) * 14 + (201, 304, 304, 404)
_PINO_INFO = (
    ("request completed", {"reqId": "req-{reqid}", "responseTime": "{ms}"}),
    ("rendered product page", {"sku": "{sku}", "cache": "hit"}),
    ("session refreshed", {"userId": "{cust}"}),
)
# service -> (logger, template) of its steady INFO traffic
_INFO: dict[str, tuple[tuple[str, str], ...]] = {
    "checkout": (
        ("c.s.checkout.order.OrderService", "Order {order} placed: {n} items, total {amount} EUR"),
        ("c.s.checkout.client.InventoryClient", "Reserved stock for order {order} ({n} lines)"),
        ("c.s.checkout.client.PaymentsClient", "Payment authorized for order {order} in {ms} ms"),
        ("c.s.checkout.cart.CartController", "Cart {cust} updated: {n} items"),
    ),
    "payments": (
        ("", 'msg="charge captured" charge_id={charge} amount={amount} currency=EUR'),
        (
            "",
            'msg="request" method=POST path=/v1/charges status=201 duration={ms}ms '
            "trace_id={trace}",
        ),
        ("", 'msg="request" method=GET path=/v1/charges/{charge} status=200 duration={ms}ms'),
        ("", 'msg="pool stats" total_conns=12 idle_conns=9 acquired_conns=3 max_conns=20'),
    ),
    "inventory": (
        ("inventory.api", "GET /stock/{sku} 200 {ms}ms"),
        ("inventory.reservations", "reserved {qty} x {sku} for order {order}"),
        ("inventory.api", "POST /reservations 201 {ms}ms"),
        ("inventory.cache", "cache hit ratio {hit}% over last 60s"),
    ),
}
_PG_INFO = (
    "checkpoint starting: time",
    "checkpoint complete: wrote {buffers} buffers ({pct}%); 0 WAL file(s) added, 0 removed, "
    "1 recycled; write={sec} s, sync=0.004 s, total={sec} s",
    'automatic vacuum of table "shop.public.cart_items": index scans: 1',
    "connection authorized: user=inventory database=inventory application_name=inventory",
    "connection authorized: user=payments database=payments application_name=pgx",
)
_REDIS_INFO = (
    "100 changes in 300 seconds. Saving...",
    "Background saving started by pid {pid}",
    "DB saved on disk",
    "Background saving terminated with success",
)
# (service, logger, level, template, share): errors and warnings that belong to no incident
_NOISE = (
    (
        "checkout",
        "c.s.checkout.notify.MailSender",
        "WARN",
        "Failed to send order confirmation for "
        "{order} to {email}: 421 4.7.0 Try again later, closing connection",
        0.006,
    ),
    (
        "checkout",
        "c.s.checkout.promo.PromoService",
        "ERROR",
        'Promo lookup failed for code {promo}: 404 Not Found: "{{"error":"promo code expired"}}"',
        0.004,
    ),
    (
        "payments",
        "",
        "WARN",
        'msg="card declined" charge_id={charge} decline_code={decline}',
        0.006,
    ),
    (
        "payments",
        "",
        "ERROR",
        'msg="webhook delivery failed" endpoint=https://hooks.partner.example'
        "/payments status=503 attempt={n}",
        0.003,
    ),
    (
        "inventory",
        "inventory.sync",
        "WARNING",
        "supplier feed {feed} returned 0 rows, keeping previous snapshot",
        0.003,
    ),
    (
        "frontend",
        _fields(
            err={
                "type": "FetchError",
                "message": "request to http://recs.shop.svc."
                "cluster.local/api/v1/recs failed, reason: socket hang up",
            }
        ),
        "ERROR",
        "failed to load recommendations",
        0.005,
    ),
    (
        "frontend",
        _fields(client="ios-3.1.9", route="/api/v1/cart"),
        "WARN",
        "deprecated API version v1 called",
        0.004,
    ),
)
_OLD_ISSUE = (
    "TypeError: Cannot read properties of undefined (reading 'price')",
    "app/components/CartLine.tsx in CartLine",
)


def _background(run: _Run) -> None:
    """Steady traffic and steady noise over the whole run."""
    topo, rng, end, noise = run.topo, run.rng, run.duration, run.noise
    for t in run.times(0, end, run.rate(0.30)):
        method, path = _pick(rng, _REQUESTS)
        run.access(t, None, method, path, _pick(rng, _OK_STATUS))
    front = topo.pods["frontend"]
    for t in run.times(0, end, run.rate(0.08)):
        msg, extra = _pick(rng, _PINO_INFO)
        extra = _fields(**{k: v.format_map(_Fill(rng, {})) for k, v in extra.items()})
        run.log(t, None, _pick(rng, front), "INFO", msg, extra, container="web")
    for service, share in (("checkout", 0.17), ("payments", 0.15), ("inventory", 0.17)):
        pods, templates = topo.pods[service], _INFO[service]
        for t in run.times(0, end, run.rate(share)):
            logger, text = _pick(rng, templates)
            run.log(t, None, _pick(rng, pods), "INFO", text, logger)
    run.stream(None, topo.pods["postgres"], 0, end, run.rate(0.06), "LOG", _PG_INFO)
    run.stream(None, topo.pods["redis"], 0, end, run.rate(0.02), "INFO", _REDIS_INFO)
    for service, logger, level, text, share in _NOISE:
        container = "web" if service == "frontend" else None
        run.stream(
            None,
            topo.pods[service],
            0,
            end,
            run.rate(share) * noise,
            level,
            (text,),
            logger,
            container=container,
        )
    pg = topo.pods["postgres"][0]
    for t in run.times(0, end, run.rate(0.004) * noise):
        run.log(
            t, None, pg, "ERROR", 'duplicate key value violates unique constraint "orders_pkey"'
        )
        run.log(t + 0.001, None, pg, "DETAIL", "Key (id)=({pid}) already exists.")
    # an old Sentry issue that keeps firing, and its periodic snapshots
    run.sentry_events(None, "frontend", *_OLD_ISSUE, 0, end, run.rate(0.002) * noise)
    for k, t in enumerate(run.times(0, end, noise / 1800, minimum=2)):
        run.sentry_issue(
            t,
            None,
            "frontend",
            *_OLD_ISSUE,
            first_seen=-9 * 86400,
            count=4210 + 37 * k,
            substatus="ongoing",
        )
    run.sentry_events(
        None,
        "payments",
        "context canceled",
        "internal/api.(*Server).handleRefund",
        0,
        end,
        run.rate(0.001) * noise,
    )
    for t in run.times(0, end, noise / 420, minimum=2):  # a flaky readiness probe
        pod = _pick(rng, topo.pods["inventory"])
        run.pod_event(
            t,
            None,
            pod,
            "Unhealthy",
            f'Readiness probe failed: Get "http://{pod.ip}:'
            '8000/healthz": context deadline exceeded (Client.Timeout exceeded while '
            "awaiting headers)",
            count=_int(rng, 1, 40),
        )
    t = rng.uniform(600, 1800)  # a flapping alarm about the report job
    while t < end - 60:
        name, entity = "report-generator-duration-high", "service:report-generator"
        run.alarm(t, None, entity, name, "JobDurationSeconds", rng.uniform(610, 900), 600)
        ok = t + rng.uniform(240, 600)
        if ok < end - 60:
            run.alarm(
                ok,
                None,
                entity,
                name,
                "JobDurationSeconds",
                rng.uniform(200, 500),
                600,
                above=False,
                state="OK",
            )
        t = ok + rng.uniform(1800, 3000) / max(noise, 0.25)
    _cron(run)
    _benign_deploys(run)


def _cron(run: _Run) -> None:
    """report-generator runs every 15 minutes and always warns about skipped rows."""
    rng = run.rng
    t, job = 60 + rng.uniform(0, 300), 29_012_345
    while t < run.duration - 120:
        job += 15
        node = _pick(rng, _NODES)
        name = f"report-generator-{job}-{_suffix(rng, 5)}"
        pod = _new_pod(rng, name, "report-generator", node, "python")
        cron = {"warning": False, "involved": "CronJob", "component": "cronjob-controller"}
        run.k8s_event(
            t,
            None,
            "service:report-generator",
            _NS,
            "SuccessfulCreate",
            f"Created job report-generator-{job}",
            **cron,
        )
        run.pod_event(
            t + 1,
            None,
            pod,
            "Scheduled",
            f"Successfully assigned {NAMESPACE}/{pod.name} to {node}",
            warning=False,
        )
        run.pod_event(
            t + 2,
            None,
            pod,
            "Pulled",
            f'Container image "{_REGISTRY}/report-generator:1.4.0" already present on machine',
            warning=False,
        )
        run.pod_event(t + 2.5, None, pod, "Created", "Created container: report", warning=False)
        run.pod_event(t + 3, None, pod, "Started", "Started container report", warning=False)
        day = run.at(t).date().isoformat()
        run.log(t + 4, None, pod, "INFO", f"Generating sales report for {day}", "reports.daily")
        run.log(
            t + rng.uniform(8, 20),
            None,
            pod,
            "WARNING",
            "Skipped {n} rows with NULL customer_id in orders_archive",
            "reports.daily",
        )
        run.log(
            t + rng.uniform(25, 40),
            None,
            pod,
            "INFO",
            f"Report written to s3://shop-reports/daily/{day}.csv ({{bytes}} rows)",
            "reports.daily",
        )
        run.k8s_event(
            t + 45,
            None,
            "service:report-generator",
            _NS,
            "SawCompletedJob",
            f"Saw completed job: report-generator-{job}, status: Complete",
            **cron,
        )
        t += 900


def _rollout(
    run: _Run, t: float, tag: str | None, service: str, version: str, n_pods: int
) -> list[_Pod]:
    """A Deployment's new ReplicaSet scaling up: its events, and the new pods."""
    rng = run.rng
    replica_set = f"{service}-{_suffix(rng, 10)}"
    run.k8s_event(
        t,
        tag,
        f"service:{service}",
        _NS,
        "ScalingReplicaSet",
        f"Scaled up replica set {replica_set} to {n_pods}",
        warning=False,
        involved="Deployment",
        component="deployment-controller",
    )
    pods, image = [], f"{_REGISTRY}/{service}:{version}"
    for _ in range(n_pods):
        node = _pick(rng, _NODES)
        pod = _new_pod(
            rng, f"{replica_set}-{_suffix(rng, 5)}", service, node, _SERVICES[service][1]
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
            f"{_int(rng, 90, 400) * 1_048_576} bytes.",
            **normal,
        )
        run.pod_event(
            t + 2.5 + took, tag, pod, "Created", f"Created container: {service}", **normal
        )
        run.pod_event(t + 3 + took, tag, pod, "Started", f"Started container {service}", **normal)
        pods.append(pod)
    return pods


def _startup(run: _Run, t: float, tag: str | None, pod: _Pod, version: str) -> None:
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
            f"Booting worker with pid: {_int(run.rng, 7, 40)}",
            style="gunicorn",
        )
    else:
        run.log(
            t,
            tag,
            pod,
            "INFO",
            "server listening",
            _fields(port=3000, version=version),
            container="web",
        )


def _benign_deploys(run: _Run) -> None:
    """Healthy rollouts: two in the baseline, one in the incident period away from incidents."""
    rng, half = run.rng, run.duration / 2
    busy = [(i.start - 900, i.end + 300) for i in run.incidents.values()]
    quiet = [
        t
        for t in range(int(half) + 120, run.duration - 600, 60)
        if not any(a <= t <= b for a, b in busy)
    ]
    plan = [
        (rng.uniform(600, half * 0.4), "inventory"),
        (rng.uniform(half / 2, half * 0.9), "frontend"),
    ]
    targets = {i.target for i in run.incidents.values()}
    spare = [s for s in ("frontend", "inventory", "payments", "checkout") if s not in targets]
    if quiet and spare:
        plan.append((float(_pick(rng, quiet)), spare[0]))
    for t, service in plan:
        new = _bump(_SERVICES[service][3], patch=True)
        run.deploy(
            t,
            None,
            service,
            f"Deployed {service} {new} (argo-cd sync, revision {_hex(rng, 7)})",
            new,
        )
        for pod in _rollout(run, t + 2, None, service, new, len(run.topo.pods[service])):
            _startup(run, t + rng.uniform(10, 25), None, pod, new)


def _metrics(run: _Run) -> None:
    """Steady metric series; scenarios then reshape what they move."""
    rng = run.rng
    rps = {"frontend": 120.0, "checkout": 40.0, "payments": 30.0, "inventory": 60.0}
    p99 = {"frontend": 180.0, "checkout": 140.0, "payments": 220.0, "inventory": 60.0}
    for service in rps:
        entity = f"service:{service}"
        run.add_series(entity, "request_rate", "grafana", "req/s", rps[service], _NS)
        run.add_series(entity, "latency_p99_ms", "grafana", "ms", p99[service], _NS, 0.08)
        run.add_series(entity, "http_5xx_rate", "grafana", "%", rng.uniform(0.05, 0.3), _NS, 0.3)
    for pods in run.topo.pods.values():
        for pod in pods:
            rel = pod.related
            run.add_series(
                pod.entity, "cpu_millicores", "kubernetes", "m", rng.uniform(120, 450), rel, 0.1
            )
            run.add_series(
                pod.entity,
                "memory_bytes",
                "kubernetes",
                "bytes",
                rng.uniform(280, 620) * 2**20,
                rel,
                0.01,
            )
            run.add_series(
                pod.entity, "cpu_throttled_percent", "grafana", "%", rng.uniform(0.5, 3), rel, 0.3
            )
    for node in _NODES:
        run.add_series(f"node:{node}", "cpu_percent", "cloudwatch", "%", rng.uniform(25, 45), [])
    run.add_series(
        "service:postgres",
        "db_connections",
        "grafana",
        "connections",
        rng.uniform(38, 52),
        _NS,
        0.06,
    )


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class ScenarioSpec:
    """One failure story: where it may strike, how it plays out, what its events say."""

    name: str
    summary: str
    targets: Callable[[_Topology], list[str]]
    build: Callable[[_Run, _Incident], None]
    markers: tuple[str, ...]  # regexes covering its events' messages (checked by the tests)

    def marker_pattern(self) -> re.Pattern[str]:
        return re.compile("|".join(self.markers))


_URLS = {
    "payments": "https://payments.shop.svc.cluster.local:8443/v1/charges",
    "inventory": "http://inventory.shop.svc.cluster.local:8000/reservations",
}
# how checkout (Java) and the frontend (Node, axios) word a failed call, per failure kind
_CHECKOUT_SAYS = {
    "timeout": (
        'I/O error on POST request for "{url}": Read timed out',
        "java.net.SocketTimeoutException: Read timed out",
    ),
    "refused": (
        'I/O error on POST request for "{url}": Connection refused',
        "java.net.ConnectException: Connection refused",
    ),
    "reset": (
        'I/O error on POST request for "{url}": Connection reset',
        "java.net.SocketException: Unexpected end of file from server",
    ),
    "500": (
        "500 Internal Server Error from POST {url}",
        "{callee} call failed for order {{order}}: 503 Service Unavailable",
    ),
}
_FRONTEND_SAYS = {
    "timeout": "timeout of 10000ms exceeded",
    "refused": "connect ECONNREFUSED 10.96.0.40:8080",
    "reset": "socket hang up",
    "500": "Request failed with status code 500",
}
_EDGE_STATUS = {"timeout": 504, "refused": 502, "reset": 502, "500": 500}


def _callers_fail(
    run: _Run, inc: _Incident, callee: str, t0: float, t1: float, share: float, kind: str
) -> None:
    """Failed calls in the app services calling ``callee``, each in its words, and edge 5xx."""
    tag, topo = inc.id, run.topo
    for caller in topo.callers[callee]:
        if caller == "checkout":
            texts = tuple(x.format(url=_URLS[callee], callee=callee) for x in _CHECKOUT_SAYS[kind])
            run.stream(
                tag,
                topo.pods[caller],
                t0,
                t1,
                run.rate(0.16) * share,
                "ERROR",
                texts,
                f"c.s.checkout.client.{callee.capitalize()}Client",
                minimum=4,
            )
        elif caller == "frontend":
            err = _fields(
                err={"type": "AxiosError", "message": _FRONTEND_SAYS[kind]}, upstream=callee
            )
            run.stream(
                tag,
                topo.pods[caller],
                t0,
                t1,
                run.rate(0.16) * share,
                "ERROR",
                ("checkout request failed",),
                err,
                minimum=4,
                container="web",
            )
    status, rng = _EDGE_STATUS[kind], run.rng
    for t in run.times(t0, t1, run.rate(0.30) * share * 0.6, minimum=4):
        rt = rng.uniform(0.5, 10) if kind == "timeout" else None
        run.access(t, tag, "POST", "/api/checkout", _pick(rng, (status, status, 500, 503)), rt)


def _edge_alarm(run: _Run, inc: _Incident, t: float) -> None:
    name, metric, ok = "shop-alb-5xx-high", "HTTPCode_Target_5XX_Count", inc.end + 60
    run.alarm(t, inc.id, "service:frontend", name, metric, run.rng.uniform(25, 80), 10)
    run.alarm(ok, inc.id, "service:frontend", name, metric, 2, 10, above=False, state="OK")


# --- bad_rollout

_CRASH = {
    "java": (
        (
            "ERROR",
            "o.a.c.c.C.[.[.[/].[dispatcherServlet]",
            "Servlet.service() for servlet "
            "[dispatcherServlet] threw exception java.lang.NullPointerException: Cannot invoke "
            '"com.shop.checkout.model.Cart.getCurrency()" because "cart" is null',
        ),
        (
            "ERROR",
            "c.s.checkout.health.ReadinessIndicator",
            "Health contributor 'paymentsClient' is DOWN: checkout.payments.base-url is not set",
        ),
    ),
    "go": (
        ("PANIC", "", "panic: runtime error: invalid memory address or nil pointer dereference"),
        ("PANIC", "", "[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x8e2f4a]"),
        (
            "PANIC",
            "",
            "goroutine 48 [running]: github.com/shop/payments/internal/charge."
            "(*Service).Capture(0xc0001a2000, {{0xa1c3e0, 0xc000312000}})",
        ),
    ),
    "python": (
        ("ERROR", "", "Exception in worker process"),
        (
            "ERROR",
            "",
            'Traceback (most recent call last): File "/app/inventory/settings.py", line '
            "41, in <module> KeyError: 'WAREHOUSE_ID'",
        ),
        ("ERROR", "", "Worker failed to boot."),
    ),
}
_ROLLOUT_ISSUE = {
    "checkout": (
        'NullPointerException: Cannot invoke "com.shop.checkout.model.Cart.getCurrency()"'
        ' because "cart" is null',
        "com.shop.checkout.order.OrderService in placeOrder",
    ),
    "payments": (
        "runtime error: invalid memory address or nil pointer dereference",
        "internal/charge.(*Service).Capture",
    ),
    "inventory": ("KeyError: 'WAREHOUSE_ID'", "inventory/settings.py in <module>"),
}
_BACKOFF = (10, 20, 40, 80, 160, 300)


def _bad_rollout(run: _Run, inc: _Incident) -> None:
    rng, s, tag, t0, end = run.rng, inc.target, inc.id, inc.start, inc.end
    old = _SERVICES[s][3]
    new = _bump(old)
    inc.root_cause = f"service:{s}"
    inc.description = f"{s} {new} crash-loops after its rollout and fails requests; rolled back"
    note = _pick(
        rng,
        (
            f"Deployed {s} {new} (argo-cd sync, revision {_hex(rng, 7)})",
            f"Release {s} v{new} to production by ci-bot",
        ),
    )
    run.deploy(t0, tag, s, note, new)
    pods = _rollout(run, t0 + 2, tag, s, new, 2)
    style = "gunicorn" if s == "inventory" else None
    for pod in pods:
        t, k = t0 + rng.uniform(12, 20), 0
        while t < end - 30:
            _startup(run, t, tag, pod, new)
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
            uid = _VALUES["uid"](rng)
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
    run.sentry_issue(t0 + 55, tag, s, title, culprit, first_seen=t0 + 25, count=_int(rng, 8, 40))
    _callers_fail(run, inc, s, t0 + 20, end - 60, 0.25, "reset")
    _edge_alarm(run, inc, t0 + rng.uniform(90, 150))
    run.deploy(
        end - 60, tag, s, f"Rollback {s} to {old} (argo-cd rollback, revision {_hex(rng, 7)})", old
    )
    run.k8s_event(
        end - 55,
        tag,
        f"service:{s}",
        _NS,
        "ScalingReplicaSet",
        f"Scaled down replica set {pods[0].name.rsplit('-', 1)[0]} to 0",
        warning=False,
        involved="Deployment",
        component="deployment-controller",
    )
    for service in (s, *run.topo.callers[s], "frontend"):
        run.shape(tag, f"service:{service}", "http_5xx_rate", t0 + 20, end - 60, rng.uniform(6, 18))


# --- db_connection_exhaustion


def _db_connection_exhaustion(run: _Run, inc: _Incident) -> None:
    rng, tag, t0, end = run.rng, inc.id, inc.start, inc.end
    inc.root_cause = "service:postgres"
    inc.description = "postgres ran out of connection slots; callers' pools time out"
    topo, full = run.topo, t0 + 150
    run.shape(tag, "service:postgres", "db_connections", t0, end, 100, ramp=180, jitter=0.01)
    reserved = _pick(
        rng,
        (
            "remaining connection slots are reserved for non-replication superuser connections",
            "remaining connection slots are reserved for roles with the SUPERUSER attribute",
        ),
    )
    run.stream(
        tag,
        topo.pods["postgres"],
        full,
        end - 60,
        run.rate(0.09),
        "FATAL",
        ("sorry, too many clients already", reserved),
        minimum=20,
    )
    run.stream(
        tag,
        topo.pods["payments"],
        full,
        end - 60,
        run.rate(0.07),
        "ERROR",
        (
            'msg="charge failed" err="failed to connect to `host=postgres.shop.svc user=payments '
            "database=payments`: server error (FATAL: sorry, too many clients already (SQLSTATE "
            '53300))"',
            'msg="acquire connection" pool=pgxpool wait=5.001s err="context deadline exceeded"',
        ),
        minimum=15,
    )
    run.stream(
        tag,
        topo.pods["inventory"],
        full,
        end - 60,
        run.rate(0.065),
        "ERROR",
        (
            "sqlalchemy.exc.TimeoutError: QueuePool limit of size 10 overflow 20 reached, "
            "connection timed out, timeout 30.00 (Background on this error at: "
            "https://sqlalche.me/e/20/3o7r)",
            'psycopg2.OperationalError: connection to server at "postgres.shop.svc" (10.96.0.41), '
            f"port 5432 failed: FATAL:  {reserved}",
        ),
        "inventory.db",
        minimum=15,
    )
    _callers_fail(run, inc, "payments", full + 30, end - 60, 0.15, "500")
    for project, title, culprit in (
        (
            "payments",
            "FATAL: sorry, too many clients already (SQLSTATE 53300)",
            "internal/store.(*Store).Begin",
        ),
        (
            "inventory",
            "TimeoutError: QueuePool limit of size 10 overflow 20 reached, connection "
            "timed out, timeout 30.00",
            "inventory.db in session_scope",
        ),
    ):
        first = full + rng.uniform(5, 40)
        run.sentry_issue(
            first + 30, tag, project, title, culprit, first_seen=first, count=_int(rng, 20, 200)
        )
        run.sentry_events(tag, project, title, culprit, first, end - 60, 1 / 30, minimum=3)
    ta, tb = full + rng.uniform(60, 120), t0 + rng.uniform(100, 160)
    run.alarm(
        ta,
        tag,
        "service:payments",
        "payments-p99-latency-high",
        "TargetResponseTime",
        rng.uniform(2200, 5200),
        1500,
    )
    run.alarm(
        tb,
        tag,
        "service:postgres",
        "postgres-connections-near-max",
        "DatabaseConnections",
        rng.uniform(91, 100),
        90,
    )
    run.shape(tag, "service:payments", "latency_p99_ms", full, end - 60, rng.uniform(2500, 5000))
    run.shape(tag, "service:inventory", "latency_p99_ms", full, end - 60, rng.uniform(1500, 4000))
    run.shape(tag, "service:payments", "http_5xx_rate", full, end - 60, rng.uniform(4, 12))


# --- memory_leak_oom

_MEM_WARN = {
    "java": (
        "WARN",
        "gc",
        "[gc] GC({n}) Pause Full (G1 Compaction Pause) 1012M->1009M(1024M) {slow_ms}.311ms",
    ),
    "go": ("WARN", "", 'msg="memory usage high" heap_inuse_mb=9{n}5 limit_mb=1024'),
    "python": ("WARNING", "inventory.worker", "worker memory 9{n}0MB exceeds soft limit 900MB"),
}
_MEM_ERROR = {  # what the runtime says before the kernel kills it (Go says nothing)
    "java": ("c.s.checkout.order.OrderService", "java.lang.OutOfMemoryError: Java heap space"),
    "python": ("inventory.api", "MemoryError: Unable to allocate 64.0 MiB for an array"),
}
_MEM_ISSUE = {
    "checkout": ("OutOfMemoryError: Java heap space", "com.shop.checkout.order.OrderService"),
    "inventory": ("MemoryError: Unable to allocate 64.0 MiB for an array", "inventory.reports"),
}
_PROCESS = {"java": "java", "go": "payments", "python": "gunicorn"}


def _memory_leak_oom(run: _Run, inc: _Incident) -> None:
    rng, s, tag, t0, end = run.rng, inc.target, inc.id, inc.start, inc.end
    inc.root_cause = f"service:{s}"
    inc.description = f"{s} leaks memory until its containers are OOMKilled, again and again"
    limit, version = 1024 * 2**20, _SERVICES[s][3]
    image = f"{_REGISTRY}/{s}:{version}"
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
                for j in range(_int(rng, 2, 5)):
                    run.log(kill - 8 + j, tag, pod, "ERROR", text, logger)
            restarts += 1
            run.k8s_event(
                kill,
                tag,
                pod.entity,
                pod.related,
                "OOMKilling",
                "Memory cgroup out of "
                f"memory: Killed process {_int(rng, 2000, 9000)} ({_PROCESS[pod.style]})"
                f" total-vm:4120332kB, anon-rss:1048{_int(rng, 100, 999)}kB, file-rss:"
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
                    f"container {s} in pod {pod.name}_{NAMESPACE}({_VALUES['uid'](rng)})",
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
            _startup(run, back + 3, tag, pod, version)
            _callers_fail(run, inc, s, kill, back + 8, 0.6, "refused")
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
            alarm_at + 80, tag, s, title, culprit, first_seen=alarm_at + 60, count=_int(rng, 3, 9)
        )


# --- noisy_neighbour_cpu

_SLOW = {
    "java": (
        "WARN",
        "c.s.checkout.web.SlowRequestFilter",
        "Slow request: {method_path} took {slow_ms} ms",
    ),
    "go": ("WARN", "", 'msg="slow request" method=POST path=/v1/charges duration={sec}s'),
    "python": ("WARNING", "inventory.api", "GET /stock/{sku} took {sec}s (threshold 1.00s)"),
    "node": ("WARN", "", "event loop lag {slow_ms}ms"),
}


_PROBE_TIMEOUTS = (
    'Readiness probe failed: Get "http://{ip}:{port}/ready": context deadline exceeded '
    "(Client.Timeout exceeded while awaiting headers)",
    'Liveness probe failed: Get "http://{ip}:{port}/healthz": net/http: request canceled while '
    "waiting for connection (Client.Timeout exceeded while awaiting headers)",
)


def _noisy_neighbour_cpu(run: _Run, inc: _Incident) -> None:
    rng, node, tag, t0, end = run.rng, inc.target, inc.id, inc.start, inc.end
    inc.root_cause = f"node:{node}"
    inc.description = f"a reindex job without CPU limits saturates {node}; its neighbours slow down"
    name = f"search-reindex-{29_100_000 + _int(rng, 1000, 9999)}-{_suffix(rng, 5)}"
    batch = _new_pod(rng, name, "search-reindex", node, "plain", namespace="jobs")
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
    total = _int(rng, 3_000_000, 6_000_000)
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
    run.series[(batch.entity, "cpu_millicores")] = _Series(
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
    victims = [p for p in run.topo.on_node(node) if p.service in ("frontend", *_APPS)]
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
        port = _SERVICES[pod.service][2]
        for k, t in enumerate(run.times(t0 + 60, end - 40, 1 / 90, minimum=2)):
            probe = _pick(rng, _PROBE_TIMEOUTS).format(ip=pod.ip, port=port)
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


# --- upstream_timeouts

_STALL = {
    "python": (
        ("CRITICAL", "", "WORKER TIMEOUT (pid:{n}3)", "gunicorn"),
        ("WARNING", "inventory.api", "GET /stock/{sku} took {sec}s (threshold 1.00s)", None),
    ),
    "go": (
        ("WARN", "", 'msg="slow request" method=POST path=/v1/charges duration={sec}s', None),
        (
            "ERROR",
            "",
            'msg="acquirer call exceeded deadline" acquirer=adyen elapsed={sec}s '
            'err="context deadline exceeded"',
            None,
        ),
    ),
}


def _upstream_timeouts(run: _Run, inc: _Incident) -> None:
    rng, u, tag, t0, end = run.rng, inc.target, inc.id, inc.start, inc.end
    inc.root_cause = f"service:{u}"
    inc.description = f"{u} stalls; checkout times out, retries and opens its circuit breaker"
    topo = run.topo
    for level, logger, text, style in _STALL[_SERVICES[u][1]]:
        run.stream(
            tag,
            topo.pods[u],
            t0,
            end - 60,
            run.rate(0.025),
            level,
            (text,),
            logger,
            minimum=6,
            style=style,
        )
    checkout, cls = topo.pods["checkout"], f"c.s.checkout.client.{u.capitalize()}Client"
    run.stream(
        tag,
        checkout,
        t0 + 20,
        end - 60,
        run.rate(0.055),
        "WARN",
        (
            f"Retry '{u}' recorded a failed retry attempt. Number of retry attempts: '{{n}}'. "
            "Waiting PT0.2S until the next attempt. Last exception was: "
            "java.net.SocketTimeoutException: Read timed out",
            f"Retrying call to {u} (attempt 2 of 3) after 200 ms backoff",
        ),
        "i.g.r.retry.internal.RetryImpl",
        minimum=15,
    )
    opened = t0 + rng.uniform(90, 150)
    for k, t in enumerate(np.arange(opened, end - 60, 60.0)):
        run.log(
            float(t),
            tag,
            checkout[k % len(checkout)],
            "WARN",
            f"CircuitBreaker '{u}' "
            f"changed state from {'CLOSED' if k == 0 else 'HALF_OPEN'} to OPEN",
            "i.g.r.circuitbreaker.internal.CircuitBreakerStateMachine",
        )
    run.stream(
        tag,
        checkout,
        opened,
        end - 60,
        run.rate(0.03),
        "ERROR",
        (
            "io.github.resilience4j.circuitbreaker.CallNotPermittedException: CircuitBreaker "
            f"'{u}' is OPEN and does not permit further calls",
        ),
        cls,
        minimum=8,
    )
    _callers_fail(run, inc, u, t0 + 20, end - 60, 0.3, "timeout")
    _callers_fail(run, inc, "checkout", t0 + 40, end - 60, 0.1, "timeout")
    run.stream(
        tag,
        topo.pods["frontend"],
        t0 + 40,
        end - 60,
        run.rate(0.025),
        "ERROR",
        (
            "upstream timed out (110: Connection timed out) while reading response header from "
            'upstream, client: {ip}, server: shop.example.com, request: "POST /api/checkout '
            'HTTP/1.1", upstream: "http://{ip}:8080/api/checkout", host: "shop.example.com"',
        ),
        minimum=6,
        style="nginx-error",
        container="nginx",
    )
    first = t0 + rng.uniform(40, 90)
    for project, title, culprit in (
        ("checkout", "SocketTimeoutException: Read timed out", f"{cls} in call"),
        (
            "frontend",
            "AxiosError: timeout of 10000ms exceeded",
            "src/api/checkout.ts in placeOrder",
        ),
    ):
        run.sentry_issue(
            first + 30, tag, project, title, culprit, first_seen=first, count=_int(rng, 30, 300)
        )
        run.sentry_events(tag, project, title, culprit, first, end - 60, 1 / 25, minimum=3)
        first += rng.uniform(10, 40)
    ta = t0 + rng.uniform(80, 140)
    run.alarm(
        ta,
        tag,
        "service:frontend",
        "shop-alb-target-response-time-high",
        "TargetResponseTime",
        rng.uniform(6, 10),
        2,
    )
    run.shape(tag, f"service:{u}", "latency_p99_ms", t0, end - 60, rng.uniform(9000, 30000))
    run.shape(tag, "service:checkout", "latency_p99_ms", t0 + 20, end - 60, 10000, jitter=0.02)
    run.shape(tag, "service:checkout", "http_5xx_rate", t0 + 20, end - 60, rng.uniform(5, 15))
    run.shape(tag, "service:frontend", "http_5xx_rate", t0 + 20, end - 60, rng.uniform(3, 9))


# --- certificate_expiry

_HANDSHAKE = {  # what the server whose certificate expired logs
    "go": (
        "ERROR",
        "",
        (
            'msg="http: TLS handshake error from {ip}:{port}: remote error: tls: bad certificate"',
            'msg="http: TLS handshake error from {ip}:{port}: remote error: tls: unknown '
            'certificate"',
        ),
    ),
    "python": (
        "WARNING",
        "asyncio",
        (
            "SSL handshake failed: [SSL: SSLV3_ALERT_CERTIFICATE_UNKNOWN] sslv3 alert certificate "
            "unknown (_ssl.c:1006)",
        ),
    ),
}


def _certificate_expiry(run: _Run, inc: _Incident) -> None:
    rng, s, tag, t0, end = run.rng, inc.target, inc.id, inc.start, inc.end
    inc.root_cause = f"service:{s}"
    inc.description = f"the serving certificate of {s} expired after its renewal failed"
    expiry, topo = t0 + 60, run.topo
    not_after = run.at(expiry)
    issuing = {"involved": "Certificate", "component": "cert-manager-certificates-issuing"}
    run.k8s_event(
        t0,
        tag,
        f"service:{s}",
        _NS,
        "Failed",
        _pick(
            rng,
            (
                "The certificate request has failed to complete and will be retried: issuer "
                '"shop-internal-ca" not ready: secret "shop-ca-key-pair" not found',
                f'Renewal of certificate "{s}-tls" failed: Failed to wait for order resource '
                f'"{s}-tls-1-{_int(rng, 10**9, 10**10)}" to become ready: order is in "errored" '
                "state",
            ),
        ),
        **issuing,
    )
    level, logger, texts = _HANDSHAKE[_SERVICES[s][1]]
    run.stream(
        tag, topo.pods[s], expiry, end - 60, run.rate(0.06), level, texts, logger, minimum=15
    )
    run.stream(
        tag,
        topo.pods["checkout"],
        expiry,
        end - 60,
        run.rate(0.056),
        "ERROR",
        (
            f'I/O error on POST request for "{_URLS[s]}": PKIX path validation failed: '
            "java.security.cert.CertPathValidatorException: validity check failed",
            "javax.net.ssl.SSLHandshakeException: PKIX path validation failed: java.security.cert."
            f"CertificateExpiredException: NotAfter: {not_after:%a %b %d %H:%M:%S UTC %Y}",
        ),
        f"c.s.checkout.client.{s.capitalize()}Client",
        minimum=15,
    )
    _callers_fail(run, inc, "checkout", expiry + 10, end - 60, 0.1, "500")
    canary = f"cwsyn-{s}-tls-canary"
    for t in np.arange(expiry + rng.uniform(5, 55), end - 60, 60.0):
        message = (
            f'ERROR: Canary step failed: Get "https://{s}.shop.svc.cluster.local/healthz": tls: '
            "failed to verify certificate: x509: certificate has expired or is not yet valid: "
            f"current time {run.at(float(t)):%Y-%m-%dT%H:%M:%SZ} is after "
            f"{not_after:%Y-%m-%dT%H:%M:%SZ}"
        )
        run.emit(
            float(t),
            tag,
            "cloudwatch",
            "log",
            f"function:{canary}",
            [f"service:{s}"],
            "error",
            message,
            {"log_group": f"/aws/lambda/{canary}"},
        )
    ta = expiry + rng.uniform(60, 120)
    run.alarm(
        ta,
        tag,
        f"service:{s}",
        f"synthetics-{s}-tls-canary-failed",
        "SuccessPercent",
        0,
        90,
        above=False,
    )
    title = (
        "SSLHandshakeException: PKIX path validation failed: java.security.cert."
        "CertPathValidatorException: validity check failed"
    )
    culprit, first = f"com.shop.checkout.client.{s.capitalize()}Client in call", expiry + 20
    run.sentry_issue(
        first + 30, tag, "checkout", title, culprit, first_seen=first, count=_int(rng, 40, 400)
    )
    run.sentry_events(tag, "checkout", title, culprit, first, end - 60, 1 / 20, minimum=5)
    run.k8s_event(
        end - 60,
        tag,
        f"service:{s}",
        _NS,
        "Issuing",
        "The certificate has been successfully issued",
        warning=False,
        **issuing,
    )
    run.shape(
        tag,
        f"service:{s}",
        "request_rate",
        expiry,
        end - 60,
        run.base(f"service:{s}", "request_rate") * 0.03,
    )
    run.shape(tag, "service:checkout", "http_5xx_rate", expiry, end - 60, rng.uniform(20, 45))
    run.shape(tag, "service:frontend", "http_5xx_rate", expiry + 10, end - 60, rng.uniform(4, 12))


_K8S_NORMAL = (
    r"Scaled (up|down) replica set|Successfully assigned|Pulling image|pulled image|"
    r"Created container|Started container|already present on machine"
)
_STARTED = r"Started CheckoutApplication|listening|Booting worker"
_EDGE_5XX = r"\" 50[0-4] |status code 50\d|50[03] (Internal Server Error|Service Unavailable)"

SCENARIOS: dict[str, ScenarioSpec] = {
    spec.name: spec
    for spec in (
        ScenarioSpec(
            "bad_rollout",
            "A new version crash-loops after its rollout; callers and the edge return 5xx",
            lambda topo: list(_APPS),
            _bad_rollout,
            (
                r"^(Deployed|Release|Rollback) ",
                _K8S_NORMAL,
                _STARTED,
                r"[Bb]ack-off",
                r"NullPointerException|nil pointer|SIGSEGV|goroutine|Exception in worker|Traceback|"
                r"Worker failed to boot|is DOWN|[Ll]iveness probe",
                r"Connection reset|Unexpected "
                r"end of file|socket hang up",
                _EDGE_5XX,
                r"shop-alb-5xx-high",
                r"WAREHOUSE_ID",
            ),
        ),
        ScenarioSpec(
            "db_connection_exhaustion",
            "postgres runs out of connection slots; callers' pools time out",
            lambda topo: ["postgres"],
            _db_connection_exhaustion,
            (
                r"too many clients|connection slots are reserved|QueuePool limit|"
                r"acquire connection",
                _EDGE_5XX,
                r"payments-p99-latency-high|postgres-connections-near-max",
            ),
        ),
        ScenarioSpec(
            "memory_leak_oom",
            "A service leaks memory until its containers are OOMKilled, again and again",
            lambda topo: list(_APPS),
            _memory_leak_oom,
            (
                r"Pause Full|memory usage high|exceeds soft limit|OutOfMemoryError|MemoryError|"
                r"out of memory|OOMKilled|Back-off",
                _K8S_NORMAL,
                _STARTED,
                r"Connection refused|"
                r"ECONNREFUSED",
                _EDGE_5XX,
                r"memory-utilization-high",
            ),
        ),
        ScenarioSpec(
            "noisy_neighbour_cpu",
            "A batch job saturates one node's CPU; only the pods on that node slow down",
            lambda topo: [n for n in _NODES if any(p.service in _APPS for p in topo.on_node(n))],
            _noisy_neighbour_cpu,
            (
                r"reindex|indexed \d+/",
                _K8S_NORMAL,
                r"[Ss]low request|took [\d.]+ ?m?s|event "
                r"loop lag|probe failed",
                r"eks-node-cpu-high",
            ),
        ),
        ScenarioSpec(
            "upstream_timeouts",
            "A dependency stalls; callers time out, retry, open their circuit breaker; 504s",
            lambda topo: ["inventory", "payments"],
            _upstream_timeouts,
            (
                r"WORKER TIMEOUT|took [\d.]+s|slow request|exceeded deadline|[Tt]imed out|Retry|"
                r"CircuitBreaker|timeout of 10000ms",
                _EDGE_5XX,
                r"target-response-time-high",
            ),
        ),
        ScenarioSpec(
            "certificate_expiry",
            "A service's serving certificate expires after its renewal failed",
            lambda topo: ["payments", "inventory"],
            _certificate_expiry,
            (r"certificate|PKIX|TLS handshake|x509|SSL|tls-canary", _EDGE_5XX),
        ),
    )
}
SCENARIO_NAMES: tuple[str, ...] = tuple(SCENARIOS)


# --------------------------------------------------------------------------- generate


def _validate(
    names: list[str] | None, seed: int, lines: int, noise: float, start: datetime | None
) -> tuple[list[str], datetime]:
    names = list(SCENARIO_NAMES) if names is None else names
    if isinstance(names, str) or not isinstance(names, list | tuple) or not names:
        raise ValueError("names: must be a non-empty list of scenario names")
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ValueError(f"names: unknown scenario {unknown[0]!r}; known: {', '.join(SCENARIOS)}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError("seed: must be an integer")
    if isinstance(lines, bool) or not isinstance(lines, int) or not MIN_LINES <= lines <= MAX_LINES:
        raise ValueError(f"lines: must be an integer from {MIN_LINES} to {MAX_LINES}")
    if isinstance(noise, bool) or not isinstance(noise, int | float) or not 0 <= noise <= 10:
        raise ValueError("noise: must be a number from 0 to 10")
    start = DEFAULT_START if start is None else start
    if not isinstance(start, datetime):
        raise ValueError("start: must be a datetime")
    return list(names), start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)


def generate(
    names: list[str] | None = None,
    *,
    seed: int = 0,
    lines: int = 20_000,
    start: datetime | None = None,
    noise: float = 1.0,
    overlap: bool = False,
) -> Scenario:
    """Generate a run of telemetry with planted incidents and its ground truth.

    Args:
        names: Scenarios to play, in time order (:data:`SCENARIO_NAMES`; None = all six).
            A name may repeat; each play picks an entity not used yet when it can.
        seed: Everything (pod names, times, values, targets) is a function of the seed.
        lines: About how many events the run holds (1,000 to 2,000,000).
        start: Start of the run (naive means UTC; default 2026-03-02 09:00 UTC).
        noise: Multiplies the rate of unrelated errors, warnings, alarms and glitches.
        overlap: Start the first two incidents together, on different entities (with one
            name, that scenario plays twice).

    Returns:
        A :class:`Scenario`: events sorted by time, metric series (one sample a minute),
        ground truth and the service call graph. The run lasts twice its incident period
        (60 minutes, or 25 per incident slot); the first half holds no incident.

    Raises:
        ValueError: a bad argument (the message names it).

    Example:
        >>> run = generate(["bad_rollout"], seed=1, lines=5_000)
        >>> run.truth.incidents[0].root_cause_entity.startswith("service:")
        True
    """
    names, start = _validate(names, seed, lines, noise, start)
    if overlap and len(names) == 1:
        names = names * 2
    slots = len(names) - (1 if overlap else 0)
    period = max(MIN_INCIDENT_PERIOD_MINUTES, SLOT_MINUTES * slots) * 60
    topology = _topology(random.Random(f"topology:{seed}"))  # noqa: S311 - synthetic data
    run = _Run(topology, seed, lines * (1 - 0.012 * len(names)), float(noise), start, 2 * period)
    _plan(run, names, overlap, period)
    _metrics(run)
    _background(run)
    for inc in run.incidents.values():
        SCENARIOS[inc.scenario].build(run, inc)
    return _finish(run, names, seed)


def _plan(run: _Run, names: list[str], overlap: bool, period: int) -> None:
    """Place each incident in its slot of the incident period and pick its entity."""
    rng, used = run.rng, []
    slot_len = SLOT_MINUTES * 60 if len(names) > 1 else period
    for k, name in enumerate(names):
        concurrent = overlap and k == 1
        if concurrent:
            start = next(iter(run.incidents.values())).start + rng.uniform(60, 180)
        else:
            slot = k - 1 if overlap and k > 1 else k
            start = period + slot * slot_len + rng.uniform(180, 300)
        candidates = SCENARIOS[name].targets(run.topo)
        busy = {used[0]} if concurrent else set()
        free = [c for c in candidates if c not in used and c not in busy]
        free = free or [c for c in candidates if c not in busy]
        if not free:
            raise ValueError(f"overlap: {name!r} has no second entity to run concurrently on")
        used.append(_pick(rng, free))
        inc_id = f"T{k + 1}-{name}"
        run.incidents[inc_id] = _Incident(inc_id, name, used[-1], start, rng.uniform(11, 14) * 60)


def _finish(run: _Run, names: list[str], seed: int) -> Scenario:
    rows = sorted(run.rows, key=lambda r: (r[0], r[1]))
    events = TypeAdapter(list[Event]).validate_python([r[3] for r in rows])
    indices: dict[str, set[int]] = {inc_id: set() for inc_id in run.incidents}
    for i, row in enumerate(rows):
        if row[2] is not None:
            indices[row[2]].add(i)
    stamps = [run.at(i * METRIC_STEP) for i in range(run.n_steps)]
    metrics = [
        MetricSeries(
            source=s.source,
            entity=entity,
            related=s.related,
            metric=metric,
            unit=s.unit,
            timestamps=stamps[s.first :],
            values=np.round(s.values, 3).tolist(),
        )
        for (entity, metric), s in run.series.items()
    ]
    incidents = []
    for inc in run.incidents.values():
        touched = {e for i in indices[inc.id] for e in events[i].entities()}
        touched |= {entity for entity, _metric in inc.metric_keys}
        incidents.append(
            TrueIncident(
                id=inc.id,
                scenario=inc.scenario,
                root_cause_entity=inc.root_cause,
                start=run.at(inc.span[0]),
                end=run.at(inc.span[1]),
                event_indices=indices[inc.id],
                metric_keys=inc.metric_keys,
                entities=sorted(touched),
                description=inc.description,
            )
        )
    truth = GroundTruth(
        incidents=incidents,
        start=run.start,
        end=run.at(run.duration),
        baseline_end=run.at(run.duration // 2),
        n_events=len(events),
        seed=seed,
        scenarios=names,
        dependencies={k: list(v) for k, v in DEPENDENCIES.items()},
    )
    return Scenario(events, metrics, truth, {k: list(v) for k, v in DEPENDENCIES.items()})


# --------------------------------------------------------------------------- files


def write_scenario(scenario: Scenario, folder: str | Path) -> ScenarioPaths:
    """Write a run as the files ``detect_incidents`` and ``evaluate_incidents`` read.

    ``events.jsonl`` (one event per line: timestamp, source, kind, entity, related,
    severity, message, attributes), ``metrics.csv`` (timestamp, entity, metric, value) and
    ``truth.json`` (:class:`GroundTruth`, with the call graph). Timestamps are ISO-8601
    UTC (``2026-03-02T09:00:00.000000Z``). Each file goes to a temp file beside it and is
    renamed when complete, so a reader never sees half a file. The formats are the ones
    ``tasks.telemetry.files`` reads; metric series lose ``source``/``related``/``unit``,
    which the CSV format has no column for.

    Args:
        scenario: A run from :func:`generate`.
        folder: Created if missing.

    Returns:
        The three paths.

    Example:
        >>> paths = write_scenario(generate(["bad_rollout"], lines=2_000), tmp_path)
        >>> paths.events.name
        'events.jsonl'
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = ScenarioPaths(folder / "events.jsonl", folder / "metrics.csv", folder / "truth.json")
    records = (
        json.dumps(
            {
                "timestamp": _iso(e.timestamp),
                "source": e.source,
                "kind": e.kind,
                "entity": e.entity,
                "related": e.related,
                "severity": e.severity,
                "message": e.message,
                "attributes": e.attributes,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
        for e in scenario.events
    )
    write_text_atomic(paths.events, "".join(f"{r}\n" for r in records))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("timestamp", "entity", "metric", "value"))
    for series in scenario.metrics:
        for stamp, value in zip(series.timestamps, series.values, strict=True):
            writer.writerow((_iso(stamp), series.entity, series.metric, repr(float(value))))
    write_text_atomic(paths.metrics, buf.getvalue())
    write_text_atomic(paths.truth, scenario.truth.model_dump_json(indent=1))
    return paths


def load_truth(path: str | Path) -> GroundTruth:
    """Read a ``truth.json`` written by :func:`write_scenario`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a ground-truth document (names the path and reason).
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        return GroundTruth.model_validate_json(text)
    except ValueError as exc:
        reason = "; ".join(str(exc).splitlines()[:3])
        raise ValueError(f"{path}: not a ground-truth file ({reason})") from None
