"""Seeded draws of the scenario generator: integers, picks, hex, and template placeholder values.

Every draw comes from the run's one ``random.Random``, so a run is a function of its seed;
changing the order or number of draws changes every run after it.

Example:
    ```python
    import random

    from samples.scenarios.draw import Fill, pick

    rng = random.Random(1)
    print(pick(rng, ("GET", "POST")), "Order {order} placed".format_map(Fill(rng, {})))
    ```
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def draw_int(rng: random.Random, a: int, b: int | None = None) -> int:
    """``randrange`` without its argument checks (this is the generator's hot path)."""
    if b is None:
        a, b = 0, a
    return a + int(rng.random() * (b - a))


def pick(rng: random.Random, seq: Sequence[T]) -> T:
    """``choice``, faster."""
    return seq[int(rng.random() * len(seq))]


def draw_hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


# values drawn for ``{name}`` placeholders in message templates
VALUES: dict[str, Callable[[random.Random], object]] = {
    "ip": lambda r: f"10.0.{draw_int(r, 1, 4)}.{draw_int(r, 2, 254)}",
    "client": lambda r: (
        f"{draw_int(r, 31, 223)}.{draw_int(r, 256)}.{draw_int(r, 256)}.{draw_int(r, 1, 255)}"
    ),
    "port": lambda r: draw_int(r, 32768, 61000),
    "order": lambda r: f"ord_{draw_hex(r, 10)}",
    "cust": lambda r: f"cus_{draw_hex(r, 8)}",
    "sku": lambda r: f"SKU-{draw_int(r, 1000, 99999)}",
    "qty": lambda r: draw_int(r, 1, 6),
    "n": lambda r: draw_int(r, 1, 13),
    "page": lambda r: draw_int(r, 1, 40),
    "amount": lambda r: f"{draw_int(r, 499, 25000) / 100:.2f}",
    "ms": lambda r: draw_int(r, 3, 180),
    "slow_ms": lambda r: draw_int(r, 1200, 4800),
    "sec": lambda r: f"{r.uniform(2.5, 9.9):.2f}",
    "reqid": lambda r: draw_hex(r, 16),
    "trace": lambda r: draw_hex(r, 32),
    "pid": lambda r: draw_int(r, 120, 32000),
    "charge": lambda r: f"ch_{draw_hex(r, 24)}",
    "promo": lambda r: pick(r, ("SPRING24", "WELCOME10", "FREESHIP", "VIP2025")),
    "bytes": lambda r: draw_int(r, 180, 48000),
    "buffers": lambda r: draw_int(r, 40, 9000),
    "pct": lambda r: f"{r.uniform(0.1, 9.5):.1f}",
    "hit": lambda r: f"{r.uniform(91, 99.5):.1f}",
    "email": lambda r: (
        f"{pick(r, ('anna', 'li', 'omar', 'jo', 'mia'))}{draw_int(r, 1, 999)}@example.org"
    ),
    "feed": lambda r: pick(r, ("acme-wholesale", "nordic-supply", "eu-distri")),
    "decline": lambda r: pick(r, ("insufficient_funds", "card_declined", "expired_card")),
    "uid": lambda r: (
        f"{draw_hex(r, 8)}-{draw_hex(r, 4)}-{draw_hex(r, 4)}-{draw_hex(r, 4)}-{draw_hex(r, 12)}"
    ),
    "method_path": lambda r: pick(r, ("GET /api/cart", "POST /api/checkout", "GET /api/session")),
}


class Fill(dict):
    """``str.format_map`` mapping that draws unnamed values (``{order}``, ``{ms}``) on demand."""

    def __init__(self, rng: random.Random, fixed: dict[str, object]):
        super().__init__(fixed)
        self.rng = rng

    def __missing__(self, key: str) -> object:
        return VALUES[key](self.rng)
