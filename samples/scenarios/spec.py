"""What a playbook is: :class:`ScenarioSpec`, and the marker patterns playbooks share.

Example:
    ```python
    from samples.scenarios import SCENARIOS

    spec = SCENARIOS["bad_rollout"]
    print(spec.summary, bool(spec.marker_pattern().search("Back-off restarting failed")))
    ```
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from samples.scenarios.run import PlantedIncident, Run
from samples.scenarios.topology import Topology


@dataclass(frozen=True)
class ScenarioSpec:
    """One failure story: where it may strike, how it plays out, what its events say."""

    name: str
    summary: str
    targets: Callable[[Topology], list[str]]
    build: Callable[[Run, PlantedIncident], None]
    markers: tuple[str, ...]  # regexes covering its events' messages (checked by the tests)

    def marker_pattern(self) -> re.Pattern[str]:
        return re.compile("|".join(self.markers))


# regexes of the events several playbooks leave
K8S_NORMAL = (
    r"Scaled (up|down) replica set|Successfully assigned|Pulling image|pulled image|"
    r"Created container|Started container|already present on machine"
)
STARTED = r"Started CheckoutApplication|listening|Booting worker"
EDGE_5XX = r"\" 50[0-4] |status code 50\d|50[03] (Internal Server Error|Service Unavailable)"
