"""The planted mess of ``messy=True``: rows a normalizer must quarantine and messy-but-valid
values (padded numbers, odd casing, ``NULL`` strings, broken tag JSON).

Example:
    ```python
    import numpy as np
    import pyarrow as pa

    from samples.focus_exports.mess import Edits

    columns = {"BilledCost": pa.array(["1.5", "2.0", "3.25"])}
    edits = Edits(columns, ["usage"] * 3, np.random.default_rng(0))
    edits.set(edits.row(), "BilledCost", "n/a", bad="bad_number")
    print(edits.apply()["BilledCost"], edits.bad)
    ```
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa


class Edits:
    """Collects cell edits and the rows they make bad, then applies them column-wise."""

    def __init__(self, columns: dict[str, pa.Array], kinds: list[str], rng: np.random.Generator):
        self.columns, self.rng = columns, rng
        self.cells: dict[str, dict[int, Any]] = {}
        self.bad: dict[int, str] = {}
        self.warnings: dict[str, int] = {}
        self._free = [i for i, k in enumerate(kinds) if k == "usage"]
        self._used: set[int] = set()

    def row(self) -> int:
        """A usage row not edited yet."""
        if len(self._used) >= len(self._free):
            raise ValueError("too few rows to plant the mess in: use more days or messy=False")
        while True:
            i = self._free[int(self.rng.integers(len(self._free)))]
            if i not in self._used:
                self._used.add(i)
                return i

    def set(self, row: int, column: str, value: Any, *, bad: str | None = None) -> None:
        self.cells.setdefault(column, {})[row] = value
        if bad:
            self.bad[row] = bad

    def map(self, row: int, column: str, fn: Callable[[Any], Any]) -> None:
        self.set(row, column, fn(self.columns[column][row].as_py()))

    def warn(self, code: str) -> None:
        self.warnings[code] = self.warnings.get(code, 0) + 1

    def apply(self) -> dict[str, pa.Array]:
        for column, cells in self.cells.items():
            arr = self.columns[column]
            values = arr.to_pylist()
            for i, v in cells.items():
                values[i] = v
            self.columns[column] = pa.array(values, arr.type)
        return self.columns


def mess_csv(e: Edits, provider: str) -> None:
    e.set(e.row(), "BilledCost", "n/a", bad="bad_number")
    e.set(e.row(), "ChargePeriodStart", "NULL" if provider == "azure" else "", bad="missing_value")
    e.set(e.row(), "ChargeCategory", "Discount", bad="bad_charge_category")
    for _ in range(3):  # padded numbers stay valid
        e.map(e.row(), "BilledCost", lambda v: f"  {v} ")
    for _ in range(2):
        e.map(e.row(), "ChargeCategory", str.lower)
    e.set(e.row(), "Tags", '{"team": "data", "env":', bad=None)
    e.warn("invalid_tags")
    r = e.row()
    e.set(r, "Tags", "NULL")
    e.set(r, "ResourceId", "NULL")
    if provider == "aws":
        e.set(e.row(), "AvailabilityZone", "null")
        e.map(e.row(), "ChargePeriodStart", lambda v: v.replace("T", " ").replace(".000Z", ""))
    else:
        e.set(e.row(), "BillingCurrency", "EURO", bad="bad_currency")
        e.map(e.row(), "BillingCurrency", lambda v: v.lower())


def mess_gcp(e: Edits) -> None:
    e.set(e.row(), "ChargePeriodStart", None, bad="missing_value")
    e.set(e.row(), "ChargeCategory", "Promotion", bad="bad_charge_category")
    e.set(e.row(), "BillingCurrency", "US$", bad="bad_currency")
    r = e.row()
    e.set(r, "ChargePeriodEnd", e.columns["ChargePeriodStart"][r].as_py(), bad="bad_period")
    e.set(e.row(), "ChargeCategory", "USAGE")
    e.set(e.row(), "ServiceCategory", "analytics")
