"""Provider-wide API rate limits, shared by every flow run, with Prefect global concurrency.

Cost APIs have low account-wide quotas (AWS Cost Explorer answers a few requests per
second per account; Azure Cost Management meters queries per tenant), so parallel tasks
and concurrent flow runs must share one budget. Each provider gets a Prefect global
concurrency limit named ``opsflow-api-<provider>`` with a slot decay: every request
takes a slot with ``rate_limit`` and the server hands slots back at the configured
rate. Operators can change the rate in the Prefect UI (Concurrency page) or with
``prefect gcl update``; a flow only creates a missing limit with the default, or
overwrites it when its ``api_rate_limits`` parameter names the provider.
"""

from __future__ import annotations

import contextlib
import math

# Requests per second, conservative defaults below each provider's documented quota.
DEFAULT_RATES: dict[str, float] = {"aws": 2.0, "azure": 0.5, "gcp": 5.0}


def limit_name(provider: str) -> str:
    """The global concurrency limit that meters ``provider``'s API."""
    return f"opsflow-api-{provider}"


def configure_rate_limits(overrides: dict[str, float] | None = None) -> dict[str, float]:
    """Make sure every provider's limit exists and is active; apply ``overrides``.

    Args:
        overrides: provider -> requests per second to set now (replacing what the
            server holds); providers not named keep the server's value, or get
            ``DEFAULT_RATES`` when they have no limit yet.

    Returns:
        provider -> requests per second in force after the call.

    Example:
        ```python
        configure_rate_limits({"aws": 1.0})  # one Cost Explorer request per second
        ```
    """
    from prefect import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    overrides = overrides or {}
    in_force: dict[str, float] = {}
    with get_client(sync_client=True) as client:
        for provider in sorted(set(DEFAULT_RATES) | set(overrides)):
            name = limit_name(provider)
            try:
                existing = client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                existing = None
            rate = overrides.get(provider)
            if existing is not None and rate is None:
                if existing.active and existing.slot_decay_per_second:
                    in_force[provider] = existing.slot_decay_per_second
                    continue
                rate = existing.slot_decay_per_second or DEFAULT_RATES.get(provider, 1.0)
            rate = float(rate if rate is not None else DEFAULT_RATES.get(provider, 1.0))
            slots = max(1, math.ceil(rate))  # burst of at most one second's worth
            created = False
            if existing is None:
                try:
                    client.create_global_concurrency_limit(
                        GlobalConcurrencyLimitCreate(
                            name=name, limit=slots, active=True, slot_decay_per_second=rate
                        )
                    )
                    created = True
                except ObjectAlreadyExists:  # another run created it meanwhile: update it
                    pass
            if not created:
                client.update_global_concurrency_limit(
                    name,
                    GlobalConcurrencyLimitUpdate(
                        limit=slots, active=True, slot_decay_per_second=rate
                    ),
                )
            in_force[provider] = rate
    return in_force


def ensure_limit(name: str, slots: int = 1) -> None:
    """Create the global concurrency limit ``name`` with ``slots`` if it does not exist.

    An existing limit is left as the operator set it (size, active or not).
    """
    from prefect import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):  # another run created it meanwhile
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=slots, active=True)
                )


def throttle(provider: str, timeout_seconds: float = 600) -> None:
    """Wait for one request slot of ``provider``'s API limit.

    A no-op outside a Prefect run (a task's ``.fn`` called directly in a script or a
    unit test has no API to meter against).
    """
    from prefect.concurrency.sync import rate_limit
    from prefect.context import FlowRunContext, TaskRunContext

    if FlowRunContext.get() is None and TaskRunContext.get() is None:
        return
    rate_limit(limit_name(provider), occupy=1, timeout_seconds=timeout_seconds)
