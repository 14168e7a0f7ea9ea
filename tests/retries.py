"""Observe a task's retries as they happen: how many, and how long Prefect waited.

The retry policy (``tasks.common.retry.cloud_api_task``) is: 3 retries, the first
about 2 s after the failure, each wait twice the one before, each varied by Prefect's
jitter (``retry_jitter_factor`` 0.5: a clamped exponential draw between ~0.63x and 1.5x
of the nominal wait). Tests shrink the task's own waits by ``SCALE`` (its delay list,
scaled) so a run takes about a second, then read the wait Prefect chose before each
retry from the API (each ``AwaitingRetry`` state's scheduled time) and the moments the
stand-in server saw each attempt.
"""

from __future__ import annotations

from datetime import datetime

from tests.conftest import task_run_count

SCALE = 0.05  # 2 s, 4 s, 8 s -> 0.1 s, 0.2 s, 0.4 s
RETRIES = 3
FIRST_WAIT = 2.0  # seconds
JITTER_LOW, JITTER_HIGH = 0.6, 1.5  # Prefect's clamp for a jitter factor of 0.5


def shrink_waits(monkeypatch, task, scale: float = SCALE) -> None:
    """Scale ``task``'s own retry waits (the list its decorator computed) by ``scale``."""
    monkeypatch.setattr(task, "retry_delay_seconds", [d * scale for d in task.retry_delay_seconds])


def chosen_waits(state) -> list[float]:
    """Seconds between each AwaitingRetry state and the time it scheduled the retry for."""
    from prefect import get_client

    task_run_count(state)  # the final state is recorded, so every state before it is too
    with get_client(sync_client=True) as client:
        states = client.read_task_run_states(state.state_details.task_run_id)
    waits = []
    for s in sorted(states, key=lambda s: s.timestamp):
        if s.name == "AwaitingRetry":
            scheduled: datetime = s.state_details.scheduled_time
            waits.append((scheduled - s.timestamp).total_seconds())
    return waits


def assert_backoff_with_jitter(state, attempt_times: list[float], scale: float = SCALE) -> None:
    """The run retried RETRIES times, waiting ~2 s, ~4 s, ~8 s (times ``scale``) with jitter,
    and each attempt reached the server no sooner than its wait allowed."""
    assert task_run_count(state) == RETRIES + 1
    waits = chosen_waits(state)
    assert len(waits) == RETRIES, waits
    nominal = [FIRST_WAIT * 2**k * scale for k in range(RETRIES)]
    ratios = [w / n for w, n in zip(waits, nominal, strict=True)]
    for k, ratio in enumerate(ratios):
        assert JITTER_LOW <= ratio <= JITTER_HIGH + 1e-6, (k, waits, nominal)
    assert waits[2] > waits[0]  # the waits grow (jitter may reorder neighbours, not these)
    # and jitter varies them (without it every ratio is 1, give or take microseconds)
    assert any(abs(r - 1) > 0.01 for r in ratios), ratios
    assert len(attempt_times) == RETRIES + 1, attempt_times
    gaps = [b - a for a, b in zip(attempt_times, attempt_times[1:], strict=False)]
    for k, (gap, wait) in enumerate(zip(gaps, waits, strict=True)):
        assert gap >= wait - 1e-3, (k, gaps, waits)  # attempt k+1 came after its wait
