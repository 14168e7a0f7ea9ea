"""Azure Resource Manager credentials, in the style of prefect-azure's blocks.

prefect-azure ships blocks for Blob Storage, Container Instances, ML and Cosmos DB but
none for the Resource Manager APIs (Cost Management, Compute, ...) opsflow reads, so
this block holds a service principal (or nothing, to use ``DefaultAzureCredential``:
managed identity, environment, Azure CLI) plus the cloud's endpoints.

Clients built here have the Azure SDK's own retries turned off (``retry_total=0``):
opsflow retries a failed call once, at the task level (``tasks.common.retry``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from prefect.blocks.core import Block
from pydantic import ConfigDict, Field, PrivateAttr, SecretStr, field_validator, model_validator

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.mgmt.compute import ComputeManagementClient
    from azure.mgmt.costmanagement import CostManagementClient

PUBLIC_AUTHORITY_HOST = "https://login.microsoftonline.com"
PUBLIC_RESOURCE_MANAGER = "https://management.azure.com"
_SP_FIELDS = ("tenant_id", "client_id", "client_secret")


class AzureCredentials(Block):
    """Credentials and endpoints for the Azure Resource Manager APIs.

    With ``tenant_id``, ``client_id`` and ``client_secret`` set, a service principal
    (``ClientSecretCredential``) signs in; with none of them, ``DefaultAzureCredential``
    (managed identity, ``AZURE_*`` environment variables, Azure CLI, ...) does.

    Args:
        tenant_id: Microsoft Entra tenant (directory) id of the service principal.
        client_id: application (client) id of the service principal.
        client_secret: the service principal's client secret.
        authority_host: Entra ID sign-in host; change it for sovereign clouds
            (``https://login.microsoftonline.us``, ``https://login.chinacloudapi.cn``).
        resource_manager_url: Resource Manager endpoint; the token scope is
            ``<resource_manager_url>/.default``.
        credential_kwargs: extra keyword arguments for the credential class (e.g.
            ``{"additionally_allowed_tenants": ["*"]}`` or
            ``{"managed_identity_client_id": "..."}``).

    Example:
        Load saved credentials and query costs:
        ```python
        from blocks.azure import AzureCredentials

        creds = AzureCredentials.load("BLOCK_NAME")
        client = creds.get_cost_management_client()
        ```

        A service principal:
        ```python
        from blocks.azure import AzureCredentials

        creds = AzureCredentials(
            tenant_id="00000000-0000-0000-0000-000000000000",
            client_id="11111111-1111-1111-1111-111111111111",
            client_secret="...",
        )
        vms = creds.get_compute_client("<subscription id>").virtual_machines.list_all()
        ```
    """

    _block_type_name = "Azure Credentials"
    _logo_url = "https://cdn.sanity.io/images/3ugk85nk/production/54e3fa7e00197a4fbd1d82ed62494cb58d08c96a-250x250.png"  # noqa: E501
    _documentation_url = (
        "https://learn.microsoft.com/azure/developer/python/sdk/authentication/overview"  # noqa: E501
    )
    _credential: Any = PrivateAttr(default=None)
    # a validation error must not echo the input: it may hold the client secret
    model_config = ConfigDict(hide_input_in_errors=True)

    tenant_id: str | None = Field(
        default=None, title="Tenant ID", description="Entra tenant id of the service principal."
    )
    client_id: str | None = Field(
        default=None, title="Client ID", description="Application id of the service principal."
    )
    client_secret: SecretStr | None = Field(
        default=None, description="Client secret of the service principal."
    )
    authority_host: str = Field(
        default=PUBLIC_AUTHORITY_HOST,
        description="Entra ID sign-in host (sovereign clouds have their own).",
    )
    resource_manager_url: str = Field(
        default=PUBLIC_RESOURCE_MANAGER,
        title="Resource Manager URL",
        description="Azure Resource Manager endpoint (sovereign clouds have their own).",
    )
    credential_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra keyword arguments for ClientSecretCredential/DefaultAzureCredential.",
    )

    @field_validator("authority_host", "resource_manager_url")
    @classmethod
    def _https_url(cls, value: str, info: Any) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith("https://") or len(value) <= len("https://"):
            raise ValueError(f"{info.field_name}: must be an https:// URL, got {value!r}")
        return value

    @model_validator(mode="after")
    def _all_or_no_service_principal_fields(self) -> AzureCredentials:
        given = [f for f in _SP_FIELDS if getattr(self, f)]
        if given and len(given) != len(_SP_FIELDS):
            missing = ", ".join(f for f in _SP_FIELDS if f not in given)
            raise ValueError(
                f"{missing}: required with {', '.join(given)} for a service principal "
                "(leave all three empty to use DefaultAzureCredential)"
            )
        return self

    @property
    def credential_scope(self) -> str:
        """The OAuth scope for Resource Manager tokens."""
        return f"{self.resource_manager_url}/.default"

    def get_credential(self) -> TokenCredential:
        """The token credential: a service principal, else ``DefaultAzureCredential``.

        Token requests are not retried by the SDK (``retry_total=0``) unless
        ``credential_kwargs`` says otherwise; one credential is kept per block instance
        so its token cache is reused.
        """
        if self._credential is not None:
            return self._credential
        from azure.identity import ClientSecretCredential, DefaultAzureCredential

        kwargs = {"authority": self.authority_host, "retry_total": 0, **self.credential_kwargs}
        if self.client_id and self.client_secret is not None:
            self._credential = ClientSecretCredential(
                tenant_id=str(self.tenant_id),
                client_id=self.client_id,
                client_secret=self.client_secret.get_secret_value(),
                **kwargs,
            )
        else:
            self._credential = DefaultAzureCredential(**kwargs)
        return self._credential

    def _client_kwargs(self, overrides: dict[str, Any]) -> dict[str, Any]:
        return {
            "base_url": self.resource_manager_url,
            "credential_scopes": [self.credential_scope],
            "retry_total": 0,
            **overrides,
        }

    def get_cost_management_client(self, **client_kwargs: Any) -> CostManagementClient:
        """A Cost Management client on this cloud's Resource Manager, SDK retries off.

        Args:
            client_kwargs: azure-core client options that override the defaults
                (``retry_total``, ``connection_timeout``, ``connection_verify``, ...).
        """
        from azure.mgmt.costmanagement import CostManagementClient

        return CostManagementClient(self.get_credential(), **self._client_kwargs(client_kwargs))

    def get_compute_client(
        self, subscription_id: str, **client_kwargs: Any
    ) -> ComputeManagementClient:
        """A Compute client for one subscription, SDK retries off.

        Args:
            subscription_id: the subscription whose VMs and disks to read.
            client_kwargs: azure-core client options that override the defaults.
        """
        from azure.mgmt.compute import ComputeManagementClient

        return ComputeManagementClient(
            self.get_credential(), subscription_id, **self._client_kwargs(client_kwargs)
        )
