"""Flow parameter validation with one-line messages that name the field."""

from __future__ import annotations

import inspect
import logging
from typing import Any

from prefect import Flow
from prefect.exceptions import ParameterBindError, ParameterTypeError


class InvalidParameters(ValueError):
    """Parameters rejected before any run starts; the message names each bad field."""


def validate_parameters(flow: Flow, params: dict[str, Any]) -> dict[str, Any]:
    """Validate ``params`` against the flow's signature (the same schema Prefect shows).

    Returns:
        The coerced parameters.

    Raises:
        InvalidParameters: one line naming every bad field and the reason.
    """
    if not isinstance(params, dict):
        raise InvalidParameters("parameters must be a JSON object")
    signature = inspect.signature(flow.fn)
    unknown = sorted(set(params) - set(signature.parameters))
    if unknown:
        raise InvalidParameters(
            f"unknown parameter {', '.join(unknown)}; expected: {', '.join(signature.parameters)}"
        )
    missing = [
        name
        for name, p in signature.parameters.items()
        if p.default is inspect.Parameter.empty and name not in params
    ]
    if missing:
        raise InvalidParameters(f"missing required parameter {', '.join(missing)}")
    flows_logger = logging.getLogger("prefect.flows")
    level = flows_logger.level
    flows_logger.setLevel(logging.CRITICAL)  # Prefect logs the same failure as a traceback
    try:
        return flow.validate_parameters(params)
    except (ParameterTypeError, ParameterBindError) as exc:
        lines = [ln.strip(" -") for ln in str(exc).splitlines()[1:] if ln.strip()]
        raise InvalidParameters("invalid parameters: " + "; ".join(lines or [str(exc)])) from None
    finally:
        flows_logger.setLevel(level)
