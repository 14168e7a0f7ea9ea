"""A local Azure Resource Manager + Entra ID token endpoint, over HTTPS.

azure-core's ``BearerTokenCredentialPolicy`` refuses to send a token over plain HTTP,
so the server speaks TLS with a certificate from a ``trustme`` CA (tests make the SDK
trust it through ``REQUESTS_CA_BUNDLE``). It serves:

- Entra ID for ``ClientSecretCredential`` (msal): ``GET /{tenant}/v2.0/.well-known/
  openid-configuration`` and ``POST /{tenant}/oauth2/v2.0/token`` (client credentials;
  the client secret is checked).
- Cost Management ``POST {scope}/providers/Microsoft.CostManagement/query``: builds the
  columns from the request's grouping (like the service: ``Cost``, ``UsageDate``, the
  dimensions, ``TagKey``/``TagValue``, ``Currency``), answers with canned rows per
  cost type and pages them through ``nextLink`` (``$skiptoken``).
- Compute ``virtualMachines`` (list all, paged), ``.../instanceView`` and ``disks``.

Every ARM call needs a token the server issued.
"""

from __future__ import annotations

import json
import re
import secrets
import ssl
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme

from tests.servers import LocalServer, Seen, json_response

API = "/providers/Microsoft.CostManagement/query"
_SCOPE = r"/subscriptions/(?P<sub>[^/]+)(?:/resourceGroups/(?P<rg>[^/]+))?"
_QUERY = re.compile(rf"^{_SCOPE}{re.escape(API)}$", re.IGNORECASE)
_VMS = re.compile(r"^/subscriptions/([^/]+)/providers/Microsoft\.Compute/virtualMachines$")
_DISKS = re.compile(r"^/subscriptions/([^/]+)/providers/Microsoft\.Compute/disks$")
_VIEW = re.compile(
    r"^/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.Compute/"
    r"virtualMachines/([^/]+)/instanceView$"
)


def arm_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def vm(
    sub: str,
    rg: str,
    name: str,
    size: str,
    location: str = "eastus",
    *,
    zones: list[str] | None = None,
    tags: dict[str, str] | None = None,
    created: str | None = "2025-01-15T10:00:00.0000000+00:00",
) -> dict[str, Any]:
    """A virtual machine in the ARM JSON shape (``virtualMachines`` list item)."""
    props: dict[str, Any] = {
        "vmId": f"{name}-0000",
        "hardwareProfile": {"vmSize": size},
        "provisioningState": "Succeeded",
        "storageProfile": {"osDisk": {"name": f"{name}-os", "osType": "Linux"}},
    }
    if created:
        props["timeCreated"] = created
    out = {
        "id": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/"
        f"virtualMachines/{name}",
        "name": name,
        "type": "Microsoft.Compute/virtualMachines",
        "location": location,
        "tags": tags or {},
        "properties": props,
    }
    if zones:
        out["zones"] = zones
    return out


def instance_view(power: str | None, power_time: str | None = None, op_time: str | None = None):
    """An instance view: a ProvisioningState status and (optionally) a PowerState one."""
    statuses: list[dict[str, Any]] = [
        {"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioned"}
    ]
    if op_time:
        statuses[0]["time"] = op_time
    if power:
        status = {"code": f"PowerState/{power}", "level": "Info", "displayStatus": f"VM {power}"}
        if power_time:
            status["time"] = power_time
        statuses.append(status)
    return {"computerName": "vm", "osName": "ubuntu", "statuses": statuses}


def disk(
    sub: str,
    rg: str,
    name: str,
    size_gb: int,
    sku: str,
    state: str,
    managed_by: str | None = None,
    location: str = "eastus",
    *,
    zones: list[str] | None = None,
    tags: dict[str, str] | None = None,
    created: str = "2025-02-01T08:30:00.0000000+00:00",
    owner_changed: str | None = None,
) -> dict[str, Any]:
    """A managed disk in the ARM JSON shape (``disks`` list item)."""
    out: dict[str, Any] = {
        "id": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/disks/{name}",
        "name": name,
        "type": "Microsoft.Compute/disks",
        "location": location,
        "tags": tags or {},
        "sku": {"name": sku, "tier": sku.split("_")[0]},
        "properties": {
            "diskSizeGB": size_gb,
            "diskState": state,
            "timeCreated": created,
            "provisioningState": "Succeeded",
        },
    }
    if owner_changed:
        out["properties"]["lastOwnershipUpdateTime"] = owner_changed
    if managed_by:
        out["managedBy"] = managed_by
    if zones:
        out["zones"] = zones
    return out


class AzureArmServer(LocalServer):
    def __init__(
        self,
        ca: trustme.CA,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        cost_rows: dict[str, list[dict[str, Any]]] | None = None,
        vms: list[dict[str, Any]] | None = None,
        views: dict[str, dict[str, Any]] | None = None,
        disks: list[dict[str, Any]] | None = None,
        page_size: int = 100,
        next_link_base: str | None = None,
    ) -> None:
        super().__init__()
        self.next_link_base = next_link_base  # answer with nextLinks to another host
        self.tenant_id, self.client_id, self.client_secret = tenant_id, client_id, client_secret
        self.cost_rows = cost_rows or {}
        self.vms, self.views, self.disks = vms or [], views or {}, disks or []
        self.page_size = page_size
        self.tokens: set[str] = set()
        self.token_forms: list[dict[str, str]] = []
        self.queries: list[tuple[str, dict[str, Any]]] = []  # (path with query, body)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def is_api_request(self, seen: Seen) -> bool:
        return seen.path.startswith("/subscriptions/")

    def api_requests(self) -> list[Seen]:
        return [r for r in self.requests if self.is_api_request(r)]

    # ------------------------------------------------------------------ dispatch

    def handle(self, seen: Seen):
        parts = urlsplit(seen.path)
        path, query = parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}
        tenant = f"/{self.tenant_id}"
        if seen.method == "GET" and path == f"{tenant}/v2.0/.well-known/openid-configuration":
            return json_response(self._openid())
        if seen.method == "POST" and path == f"{tenant}/oauth2/v2.0/token":
            return self._token(seen)
        if not path.startswith("/subscriptions/"):
            return json_response(arm_error("NotFound", f"{path} not found"), 404)
        auth = seen.headers.get("authorization", "")
        if auth.removeprefix("Bearer ") not in self.tokens:
            return json_response(
                arm_error("AuthenticationFailed", "Authentication failed. Missing token."), 401
            )
        if "api-version" not in query:
            return json_response(arm_error("MissingApiVersionParameter", "api-version"), 400)
        if seen.method == "POST" and _QUERY.match(path):
            return self._query(seen, query)
        if seen.method == "GET" and _VMS.match(path):
            return self._paged(seen.path, self.vms, query)
        if seen.method == "GET" and _DISKS.match(path):
            return self._paged(seen.path, self.disks, query)
        view = _VIEW.match(path)
        if seen.method == "GET" and view:
            name = view.group(3)
            if name not in self.views:
                return json_response(arm_error("ResourceNotFound", f"{name} not found"), 404)
            return json_response(self.views[name])
        return json_response(arm_error("InvalidResourceType", f"{path}"), 404)

    def _openid(self) -> dict[str, Any]:
        base = f"{self.url}/{self.tenant_id}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "issuer": f"{base}/v2.0",
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        }

    def _token(self, seen: Seen):
        form = {k: v[0] for k, v in parse_qs(seen.body.decode()).items()}
        self.token_forms.append({k: v for k, v in form.items() if k != "client_secret"})
        if form.get("grant_type") != "client_credentials":
            return json_response({"error": "unsupported_grant_type"}, 400)
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            return json_response(
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                    "error_codes": [7000215],
                },
                401,
            )
        token = "eyJ0eXAi.local-" + secrets.token_urlsafe(16)
        self.tokens.add(token)
        return json_response(
            {
                "token_type": "Bearer",
                "expires_in": 3599,
                "ext_expires_in": 3599,
                "access_token": token,
            }
        )

    # ------------------------------------------------------------------ ARM APIs

    def _paged(self, full_path: str, items: list[dict[str, Any]], query: dict[str, str]):
        start = int(query.get("$skiptoken") or 0)
        page = items[start : start + self.page_size]
        body: dict[str, Any] = {"value": page}
        if start + self.page_size < len(items):
            base = full_path.split("?")[0]
            body["nextLink"] = (
                f"{self.url}{base}?api-version={query['api-version']}"
                f"&$skiptoken={start + self.page_size}"
            )
        return json_response(body)

    def _query(self, seen: Seen, query: dict[str, str]):
        body = json.loads(seen.body or b"{}")
        self.queries.append((seen.path, body))
        cost_type = body.get("type")
        if cost_type not in ("ActualCost", "AmortizedCost", "Usage"):
            return json_response(arm_error("BadRequest", f"Invalid query type: {cost_type}"), 400)
        if body.get("timeframe") == "Custom" and not body.get("timePeriod"):
            return json_response(arm_error("BadRequest", "timePeriod is required"), 400)
        dataset = body.get("dataset") or {}
        columns = [{"name": "Cost", "type": "Number"}, {"name": "UsageDate", "type": "Number"}]
        for group in dataset.get("grouping") or []:
            if group["type"] == "TagKey":
                columns += [
                    {"name": "TagKey", "type": "String"},
                    {"name": "TagValue", "type": "String"},
                ]
            else:
                columns.append({"name": group["name"], "type": "String"})
        columns.append({"name": "Currency", "type": "String"})
        names = [c["name"] for c in columns]
        rows = [[r.get(n) for n in names] for r in self.cost_rows.get(cost_type, [])]
        start = int(query.get("$skiptoken") or 0)
        nxt = None
        if start + self.page_size < len(rows):
            nxt = (
                f"{self.next_link_base or self.url}{urlsplit(seen.path).path}"
                f"?api-version={query['api-version']}"
                f"&$skiptoken={start + self.page_size}"
            )
        return json_response(
            {
                "id": f"{urlsplit(seen.path).path}/{secrets.token_hex(8)}",
                "name": secrets.token_hex(8),
                "type": "Microsoft.CostManagement/query",
                "properties": {
                    "nextLink": nxt,
                    "columns": columns,
                    "rows": rows[start : start + self.page_size],
                },
            }
        )
