"""The failure stories a run can play, one module per playbook, and their registry.

Each playbook module has a ``build(run, incident)`` that plants the incident's events and
metric shapes, and a ``SPEC`` (:class:`samples.scenarios.spec.ScenarioSpec`) naming where it
may strike and the patterns its events match. Each leaves signals in at least two sources.

Example:
    ```python
    from samples.scenarios.playbooks import SCENARIO_NAMES, SCENARIOS

    for name in SCENARIO_NAMES:
        print(name, "-", SCENARIOS[name].summary)
    ```
"""

from __future__ import annotations

from samples.scenarios.playbooks import (
    bad_rollout,
    certificate_expiry,
    db_connection_exhaustion,
    memory_leak_oom,
    noisy_neighbour_cpu,
    upstream_timeouts,
)
from samples.scenarios.spec import ScenarioSpec

SCENARIOS: dict[str, ScenarioSpec] = {
    module.SPEC.name: module.SPEC
    for module in (
        bad_rollout,
        db_connection_exhaustion,
        memory_leak_oom,
        noisy_neighbour_cpu,
        upstream_timeouts,
        certificate_expiry,
    )
}
SCENARIO_NAMES: tuple[str, ...] = tuple(SCENARIOS)
