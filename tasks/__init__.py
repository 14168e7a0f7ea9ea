"""Retryable Prefect tasks and the pure logic they call, one module per outside system or step."""
