"""Flow parameter validation with one-line messages that name the field."""

from __future__ import annotations

import inspect
import logging
import typing
from typing import Any

from prefect import Flow
from prefect.exceptions import ParameterBindError, ParameterTypeError
from pydantic import TypeAdapter, ValidationError


class InvalidParameters(ValueError):
    """Parameters rejected before any run starts; the message names each bad field.

    Attributes:
        problems: ``(field, reason)`` per bad field (``aws.0.regions``, ``...``).
    """

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.problems = problems or []


def validate_parameters(
    flow: Flow, params: dict[str, Any], *, partial: bool = False
) -> dict[str, Any]:
    """Validate ``params`` against the flow's signature (the same schema Prefect shows).

    Args:
        flow: the flow whose parameter model applies.
        params: parameter name -> value.
        partial: the parameters are defaults (a deployment's or a config file's): the
            fields given are validated, required ones may be left to each run.

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
            f"unknown parameter {', '.join(unknown)}; expected: {', '.join(signature.parameters)}",
            [
                (name, f"unknown parameter; expected: {', '.join(signature.parameters)}")
                for name in unknown
            ],
        )
    missing = [
        name
        for name, p in signature.parameters.items()
        if p.default is inspect.Parameter.empty and name not in params
    ]
    if missing and partial:
        return _validate_fields(flow, params)
    if missing:
        raise InvalidParameters(
            f"missing required parameter {', '.join(missing)}",
            [(name, "missing required parameter") for name in missing],
        )
    flows_logger = logging.getLogger("prefect.flows")
    level = flows_logger.level
    flows_logger.setLevel(logging.CRITICAL)  # Prefect logs the same failure as a traceback
    try:
        return flow.validate_parameters(params)
    except (ParameterTypeError, ParameterBindError) as exc:
        lines = [ln.strip(" -") for ln in str(exc).splitlines()[1:] if ln.strip()]
        problems = [tuple(ln.split(": ", 1)) for ln in lines if ": " in ln]
        raise InvalidParameters(
            "invalid parameters: " + "; ".join(lines or [str(exc)]), problems
        ) from None
    finally:
        flows_logger.setLevel(level)


def _validate_fields(flow: Flow, params: dict[str, Any]) -> dict[str, Any]:
    """Each given parameter against its own annotation (constraints included)."""
    hints = typing.get_type_hints(flow.fn, include_extras=True)
    coerced: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for name, value in params.items():
        try:
            coerced[name] = TypeAdapter(hints.get(name, Any)).validate_python(value)
        except ValidationError as exc:
            for err in exc.errors():
                problems.append((".".join(str(p) for p in (name, *err["loc"])), err["msg"]))
    if problems:
        lines = [f"{field}: {reason}" for field, reason in problems]
        raise InvalidParameters("invalid parameters: " + "; ".join(lines), problems)
    return coerced
