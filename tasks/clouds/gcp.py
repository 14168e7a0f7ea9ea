"""Google Cloud clients from a prefect-gcp ``GcpCredentials`` block.

One factory per API opsflow calls (BigQuery, Compute Engine, Cloud Billing Catalog).
Every factory takes an ``api_endpoint`` so the same code runs against a local server;
the REST transports accept ``http://`` for that. Errors are classified for retrying in
``tasks.common.retry`` (429, 5xx and timeouts are retried; auth and validation are not).

Example:
    ```python
    from prefect import flow
    from prefect_gcp import GcpCredentials

    from tasks.clouds.gcp import bigquery_client


    @flow
    def datasets(project: str) -> list[str]:
        client = bigquery_client(GcpCredentials.load("billing-reader"), project)
        return [d.dataset_id for d in client.list_datasets()]
    ```
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from prefect_gcp import GcpCredentials

COMPUTE_ENDPOINT = "https://compute.googleapis.com"
BILLING_ENDPOINT = "https://cloudbilling.googleapis.com"


def rest_host(api_endpoint: str) -> dict[str, str]:
    """``host``/``url_scheme`` for a google-cloud REST transport from ``[scheme://]host[:port]``."""
    parts = urlsplit(api_endpoint if "://" in api_endpoint else f"https://{api_endpoint}")
    return {"host": parts.netloc, "url_scheme": parts.scheme or "https"}


def google_auth(gcp_credentials: GcpCredentials) -> Any:
    """The google-auth credentials of the block (its service account, else ADC)."""
    return gcp_credentials.get_credentials_from_service_account()


def bigquery_client(
    gcp_credentials: GcpCredentials, project: str, api_endpoint: str | None = None
) -> Any:
    """A BigQuery client authenticated by the block (``api_endpoint`` overrides the host)."""
    from google.cloud import bigquery

    return bigquery.Client(
        project=project,
        credentials=google_auth(gcp_credentials),
        client_options={"api_endpoint": api_endpoint} if api_endpoint else None,
    )


def compute_clients(
    gcp_credentials: GcpCredentials, api_endpoint: str = COMPUTE_ENDPOINT
) -> tuple[Any, Any]:
    """Instances and Disks clients (REST transport) authenticated by the block.

    Args:
        gcp_credentials: prefect-gcp ``GcpCredentials`` block.
        api_endpoint: ``https://host[:port]``; ``http://`` is accepted for local servers.
    """
    from google.cloud import compute_v1
    from google.cloud.compute_v1.services.disks.transports import DisksRestTransport
    from google.cloud.compute_v1.services.instances.transports import InstancesRestTransport

    common = {
        **rest_host(api_endpoint),
        "credentials": google_auth(gcp_credentials),
    }
    return (
        compute_v1.InstancesClient(transport=InstancesRestTransport(**common)),
        compute_v1.DisksClient(transport=DisksRestTransport(**common)),
    )


def catalog_client(gcp_credentials: GcpCredentials, api_endpoint: str = BILLING_ENDPOINT) -> Any:
    """A Cloud Billing Catalog client (REST transport) authenticated by the block.

    Args:
        gcp_credentials: prefect-gcp ``GcpCredentials`` block (service account or ADC).
        api_endpoint: ``https://host[:port]`` of the API; ``http://`` is accepted for
            local test servers.

    Returns:
        A ``CloudCatalogClient``.
    """
    from google.cloud.billing_v1 import CloudCatalogClient
    from google.cloud.billing_v1.services.cloud_catalog.transports import CloudCatalogRestTransport

    transport = CloudCatalogRestTransport(
        **rest_host(api_endpoint), credentials=google_auth(gcp_credentials)
    )
    return CloudCatalogClient(transport=transport)
