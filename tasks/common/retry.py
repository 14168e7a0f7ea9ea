"""Which outside failures are worth retrying, decided in one place for every task.

Retry when waiting can help: throttling (HTTP 429, AWS ``Throttling*`` codes), timeouts,
dropped connections and server errors (HTTP 5xx). Never retry what waiting cannot fix:
bad credentials, missing permissions, validation errors, other 4xx. Tasks use
``retry_on_transient`` as their Prefect ``retry_condition_fn`` together with
``exponential_backoff`` and jitter (see ``RETRY_*`` below); their SDK clients have their
own retries turned off so a failure is retried once, here, not multiplied.

``one_line_reason`` turns an exception into the short, secret-free text a result shows.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from tasks.common.secrets import mask

RETRIES = 3
RETRY_BACKOFF_FACTOR = 2.0  # seconds before the first retry; doubles on each retry
RETRY_JITTER_FACTOR = 0.5  # each delay varies by up to +/-50%, so retries do not align

# botocore ClientError codes that mean "slow down" or "try again later".
TRANSIENT_AWS_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "InternalServiceError",
        "RequestTimeout",
        "RequestTimeoutException",
        "500",
        "502",
        "503",
        "504",
    }
)


def _is_transient_status(status: int | None) -> bool:
    return status is not None and (status == 429 or status == 408 or 500 <= status <= 599)


def _aws_transient(exc: BaseException) -> bool | None:
    """True/False for botocore exceptions, None when ``exc`` is not one."""
    try:
        from botocore import exceptions as bx
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return None
    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {}) or {}
        code = str(error.get("Code", ""))
        status = (exc.response.get("ResponseMetadata", {}) or {}).get("HTTPStatusCode")
        return code in TRANSIENT_AWS_CODES or _is_transient_status(status)
    if isinstance(
        exc,
        bx.ConnectTimeoutError
        | bx.ReadTimeoutError
        | bx.EndpointConnectionError
        | bx.ConnectionClosedError,
    ):
        return True
    if isinstance(exc, bx.BotoCoreError):  # no credentials, bad parameters, ...
        return False
    return None


def _google_transient(exc: BaseException) -> bool | None:
    """True/False for google-api-core / google-auth exceptions, None otherwise."""
    try:
        from google.api_core import exceptions as gx
        from google.auth import exceptions as ax
    except ImportError:  # pragma: no cover - google-cloud-billing is a dependency
        return None
    if isinstance(
        exc,
        gx.TooManyRequests
        | gx.ServiceUnavailable
        | gx.InternalServerError
        | gx.BadGateway
        | gx.GatewayTimeout
        | gx.DeadlineExceeded
        | gx.RetryError,
    ):
        return True
    if isinstance(exc, gx.GoogleAPICallError):
        return _is_transient_status(getattr(exc, "code", None))
    if isinstance(exc, ax.RefreshError):  # bad key, revoked account, ...
        return False
    if isinstance(exc, ax.TransportError):  # could not reach the token endpoint
        return True
    if isinstance(exc, ax.GoogleAuthError):
        return False
    return None


def _azure_transient(exc: BaseException) -> bool | None:
    """True/False for azure-core exceptions, None otherwise."""
    try:
        from azure.core import exceptions as zx
    except ImportError:  # pragma: no cover - azure-core is a dependency
        return None
    if isinstance(exc, zx.ClientAuthenticationError):  # bad secret, no identity
        return False
    if isinstance(exc, zx.HttpResponseError):
        return _is_transient_status(exc.status_code)
    if isinstance(exc, zx.ServiceRequestError | zx.ServiceResponseError):
        return True  # could not connect, or the connection dropped / timed out
    if isinstance(exc, zx.AzureError):
        return False
    return None


def is_transient(exc: BaseException) -> bool:
    """Return True when retrying the call that raised ``exc`` may succeed.

    Args:
        exc: the exception raised by an outside call (botocore, httpx, google-api-core,
            google-auth, azure-core or a builtin timeout/connection error).

    Returns:
        True for throttling, timeouts, connection failures and 5xx; False for auth,
        permission and validation errors and anything unrecognised.

    Example:
        ```python
        is_transient(httpx.ReadTimeout("slow"))  # True
        ```
    """
    for check in (_aws_transient, _google_transient, _azure_transient):
        verdict = check(exc)
        if verdict is not None:
            return verdict
    if isinstance(exc, httpx.HTTPStatusError):
        return _is_transient_status(exc.response.status_code)
    if isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError):
        return True
    if isinstance(exc, httpx.HTTPError):  # invalid URL, too many redirects, ...
        return False
    return isinstance(exc, TimeoutError | ConnectionError)


def retry_on_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the failure is transient.

    Args:
        task: the Prefect task (unused).
        task_run: the task run (unused).
        state: the failed state; its data is the raised exception.

    Returns:
        ``is_transient`` of the exception the task raised.
    """
    exc = getattr(state, "data", None)
    if not isinstance(exc, BaseException):
        try:
            exc = state.result(raise_on_failure=False)
        except Exception:  # an unreadable state is not worth retrying
            return False
    return isinstance(exc, BaseException) and is_transient(exc)


_WS = re.compile(r"\s+")


def one_line_reason(exc: BaseException, secrets: Iterable[str] = (), max_len: int = 300) -> str:
    """Summarise ``exc`` in one line, with any of ``secrets`` masked.

    Args:
        exc: the exception to describe.
        secrets: secret values (keys, tokens) that must not appear in the text.
        max_len: longest text returned.

    Returns:
        ``"<ExceptionType>: <message>"`` on one line, secrets replaced by ``***``.

    Example:
        ```python
        one_line_reason(ValueError("bad\\nkey s3cr3t"), secrets=["s3cr3t"])
        # 'ValueError: bad key ***'
        ```
    """
    if isinstance(exc, httpx.HTTPStatusError):  # drop the query string and the MDN link
        req, resp = exc.request, exc.response
        url = str(req.url.copy_with(query=None, fragment=None))
        message = f"HTTP {resp.status_code} {resp.reason_phrase} from {req.method} {url}"
    else:
        message = str(exc) or repr(exc)
    message = mask(message, secrets)
    text = _WS.sub(" ", f"{type(exc).__name__}: {message}").strip()
    return text if len(text) <= max_len else text[: max_len - 1] + "…"


def failure_reason(state: Any, secrets: Iterable[str] = ()) -> str:
    """Why a task run failed, in one secret-free line (for a result's ``missing`` list).

    Args:
        state: the failed Prefect state of a task run (``future.state``).
        secrets: secret values to mask, as for ``one_line_reason``.

    Returns:
        ``one_line_reason`` of the raised exception, else the state's message or name.
    """
    error = state.result(raise_on_failure=False)
    if isinstance(error, BaseException):
        return one_line_reason(error, secrets)
    return state.message or state.name or "failed"


def cloud_api_task(name: str) -> Callable[[Callable[..., Any]], Any]:
    """``@task`` with opsflow's retry policy for calls to a cloud API.

    Retries throttling, timeouts and 5xx with exponential backoff and jitter
    (``retry_on_transient``), never auth or validation errors; no result caching,
    since a price or a cost must be fetched fresh.
    """
    from prefect import task
    from prefect.cache_policies import NO_CACHE
    from prefect.tasks import exponential_backoff

    return task(
        name=name,
        retries=RETRIES,
        retry_delay_seconds=exponential_backoff(backoff_factor=RETRY_BACKOFF_FACTOR),
        retry_jitter_factor=RETRY_JITTER_FACTOR,
        retry_condition_fn=retry_on_transient,
        cache_policy=NO_CACHE,
        persist_result=False,
    )


def task_logger(name: str) -> logging.Logger | logging.LoggerAdapter:
    """The task run's logger; the module logger when called outside a run (``.fn``)."""
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(name)
