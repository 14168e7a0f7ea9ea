"""Kubernetes API clients from a prefect-kubernetes ``KubernetesCredentials`` block, and
the two errors every Kubernetes call raises.

``kubernetes_api_client`` resolves the cluster as prefect-kubernetes does; ``json_call``
and ``list_all`` call a generated API method and return its JSON (following
``metadata.continue``). Failures become ``KubernetesUnavailable`` (408/429/5xx,
connection: retried by ``tasks.common.retry``) or ``KubernetesApiError`` (auth,
permission, validation, not found: not retried), with the API's own message; inside
``kubernetes_api_client`` that message is masked with the credentials in use (the
block's secrets and the resolved bearer token or password), since an API, proxy or
webhook may quote the request's ``Authorization`` header back.

Example:
    ```python
    from kubernetes.client import CoreV1Api
    from prefect import flow
    from prefect_kubernetes.credentials import KubernetesCredentials

    from tasks.clouds.kubernetes import kubernetes_api_client, list_all


    @flow
    def namespaces() -> list[str]:
        with kubernetes_api_client(KubernetesCredentials.load("prod")) as api:
            items = list_all(CoreV1Api(api).list_namespace)
        return [ns["metadata"]["name"] for ns in items]
    ```
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tasks.common.secrets import block_secrets, mask

if TYPE_CHECKING:
    from kubernetes.client import ApiClient
    from prefect_kubernetes.credentials import KubernetesCredentials

REQUEST_TIMEOUT = (10, 60)  # seconds: connect, read
LIST_PAGE_SIZE = 500


class _KubernetesError:
    status: int | None
    reason: str

    def _init(self, status: int | None, reason: str, detail: str) -> str:
        self.status, self.reason = status, reason
        code = f"{status} {reason}".strip() if status else reason
        return f"Kubernetes API {code}: {detail}" if detail else f"Kubernetes API {code}"


class KubernetesApiError(_KubernetesError, RuntimeError):
    """The API refused the request (auth, permission, validation, not found): no retry."""

    def __init__(self, status: int | None, reason: str, detail: str = "") -> None:
        RuntimeError.__init__(self, self._init(status, reason, detail))


class KubernetesUnavailable(_KubernetesError, ConnectionError):
    """Throttled (429), server error (5xx), timeout or no connection: worth retrying."""

    def __init__(self, status: int | None, reason: str, detail: str = "") -> None:
        ConnectionError.__init__(self, self._init(status, reason, detail))


def _status_detail(body: Any) -> str:
    """The ``message`` of a ``Status`` body, else the body's start."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    try:
        data = json.loads(text)
        if isinstance(data, dict) and data.get("message"):
            return str(data["message"])[:300]
    except ValueError:
        pass
    return " ".join(text.split())[:200]


def api_error(exc: BaseException) -> Exception:
    """Translate a kubernetes-client / urllib3 failure into the two errors above.

    Args:
        exc: an ``ApiException`` or a urllib3 error raised by the client.

    Returns:
        ``KubernetesUnavailable`` for 408/429/5xx and connection-level failures,
        ``KubernetesApiError`` for any other status.
    """
    import urllib3
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ApiException):
        status = int(exc.status or 0) or None
        detail = _status_detail(exc.body)
        reason = str(exc.reason or "").splitlines()[0] if exc.reason else ""
        if status is None or status in (408, 429) or status >= 500:
            return KubernetesUnavailable(status, reason, detail)
        return KubernetesApiError(status, reason, detail)
    if isinstance(exc, urllib3.exceptions.HTTPError):
        return KubernetesUnavailable(None, type(exc).__name__, str(exc)[:200])
    return exc if isinstance(exc, Exception) else RuntimeError(str(exc))


@contextmanager
def kubernetes_api_client(
    kubernetes_credentials: KubernetesCredentials | None,
) -> Iterator[ApiClient]:
    """A sync ``kubernetes`` ``ApiClient`` for the block's cluster, closed on exit.

    Resolution follows prefect-kubernetes: ``kubernetes_credentials.cluster_config``
    (kubeconfig dict + context) when set, else in-cluster config, else the default
    kubeconfig. urllib3's own retries are off: the task retries.

    Example:
        ```python
        import json

        from kubernetes.client import CoreV1Api
        from prefect import flow
        from prefect_kubernetes.credentials import KubernetesCredentials

        from tasks.clouds.kubernetes import json_call, kubernetes_api_client


        @flow
        def node_names() -> list[str]:
            with kubernetes_api_client(KubernetesCredentials.load("BLOCK_NAME")) as api:
                nodes = json.loads(json_call(CoreV1Api(api).list_node))
            return [node["metadata"]["name"] for node in nodes["items"]]
        ```
    """
    from kubernetes import client, config

    configuration = client.Configuration()
    cluster = getattr(kubernetes_credentials, "cluster_config", None)
    if cluster is not None:
        config.load_kube_config_from_dict(
            config_dict=cluster.config,
            context=cluster.context_name,
            client_configuration=configuration,
            persist_config=False,
        )
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            config.load_kube_config(client_configuration=configuration, persist_config=False)
    configuration.retries = False
    secrets = block_secrets(kubernetes_credentials) + _configuration_secrets(configuration)
    api = client.ApiClient(configuration)
    try:
        yield api
    except (
        KubernetesApiError,
        KubernetesUnavailable,
    ) as exc:  # the API's message may quote the request's token
        exc.args = tuple(mask(str(a), secrets) for a in exc.args)
        raise
    finally:
        api.close()


def _configuration_secrets(configuration: Any) -> list[str]:
    """The bearer token / password a resolved client configuration sends."""
    found = [str(configuration.password or "")]
    for value in (configuration.api_key or {}).values():
        text = str(value or "")
        found += [text, text.removeprefix("Bearer ").strip()]
    return [s for s in found if s]


def json_call(method: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a generated API method, returning the response JSON (or text for logs)."""
    import urllib3
    from kubernetes.client.exceptions import ApiException

    try:
        response = method(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        data = response.data
        response.release_conn()
    except (ApiException, urllib3.exceptions.HTTPError) as exc:
        raise api_error(exc) from None
    return data


def list_all(method: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    """Every item of a list call, following ``metadata.continue``."""
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        extra = {"_continue": token} if token else {}
        page = json.loads(json_call(method, *args, limit=LIST_PAGE_SIZE, **kwargs, **extra))
        items.extend(page.get("items") or [])
        token = (page.get("metadata") or {}).get("continue")
        if not token:
            return items
