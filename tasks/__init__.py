"""Retryable Prefect tasks and the pure logic they call, one subpackage per domain (see
docs/ARCHITECTURE.md): common, clouds, pricing, costs, inventory, telemetry, incidents."""
