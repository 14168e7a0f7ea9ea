"""Generate a run: plan the incidents, lay down the background, play the playbooks.

Example:
    ```python
    from samples.scenarios.generate import generate

    run = generate(["upstream_timeouts", "certificate_expiry"], seed=3, lines=8_000)
    print(len(run.events), [i.root_cause_entity for i in run.truth.incidents])
    ```
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

from samples.scenarios.draw import pick
from samples.scenarios.metrics import steady_metrics
from samples.scenarios.noise import background
from samples.scenarios.playbooks import SCENARIO_NAMES, SCENARIOS
from samples.scenarios.run import PlantedIncident, Run
from samples.scenarios.topology import build_topology
from samples.scenarios.truth import Scenario, assemble

DEFAULT_START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
SLOT_MINUTES = 25  # time given to each incident in the incident period
MIN_INCIDENT_PERIOD_MINUTES = 60  # the baseline is as long as the incident period
MIN_LINES, MAX_LINES = 1_000, 2_000_000


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
        >>> from samples.scenarios import generate
        >>> run = generate(["bad_rollout"], seed=1, lines=5_000)
        >>> run.truth.incidents[0].root_cause_entity.startswith("service:")
        True
    """
    names, start = _validate(names, seed, lines, noise, start)
    if overlap and len(names) == 1:
        names = names * 2
    slots = len(names) - (1 if overlap else 0)
    period = max(MIN_INCIDENT_PERIOD_MINUTES, SLOT_MINUTES * slots) * 60
    topology = build_topology(random.Random(f"topology:{seed}"))  # noqa: S311 - synthetic data
    run = Run(topology, seed, lines * (1 - 0.012 * len(names)), float(noise), start, 2 * period)
    _plan(run, names, overlap, period)
    steady_metrics(run)
    background(run)
    for inc in run.incidents.values():
        SCENARIOS[inc.scenario].build(run, inc)
    return assemble(run, names, seed)


def _plan(run: Run, names: list[str], overlap: bool, period: int) -> None:
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
        used.append(pick(rng, free))
        inc_id = f"T{k + 1}-{name}"
        run.incidents[inc_id] = PlantedIncident(
            inc_id, name, used[-1], start, rng.uniform(11, 14) * 60
        )
