"""A local Azure Resource Manager + Entra ID token endpoint, over HTTPS.

azure-core's ``BearerTokenCredentialPolicy`` refuses to send a token over plain HTTP,
so the server speaks TLS with a certificate from a ``trustme`` CA (tests make the SDK
trust it through ``REQUESTS_CA_BUNDLE``). It serves:

- Entra ID for ``ClientSecretCredential`` (msal): ``GET /{tenant}/v2.0/.well-known/
  openid-configuration`` and ``POST /{tenant}/oauth2/v2.0/token`` (client credentials;
  the client secret is checked).
- Cost Management ``POST {scope}/providers/Microsoft.CostManagement/query``: holds cost
  rows per cost type at the finest grain (day, currency, the dimensions, one tag) and
  answers like the service: rows in ``timePeriod``, kept by ``dataset.filter``
  (``dimensions``/``tags`` ``In`` comparisons, ``and``/``or`` of 2 or more), summed per
  day (``Daily``) and ``dataset.grouping`` (columns ``Cost``, ``UsageDate``, the
  dimensions, ``TagKey``/``TagValue``, ``Currency``), paged through ``nextLink``
  (``$skiptoken``). As the REST reference documents, a query may have at most 2
  groupings (``max_groupings``; more is a 400 ``BadRequest`` "Invalid query definition"
  in the service's error shape), and an unknown grouping dimension is a 400 too.
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
# a subset of the dimensions the service lists in its "Invalid dataset grouping" error
GROUPING_DIMENSIONS = (
    "ResourceGroup",
    "ResourceGroupName",
    "ResourceLocation",
    "ResourceType",
    "ResourceId",
    "MeterCategory",
    "MeterSubcategory",
    "Meter",
    "ServiceName",
    "ServiceTier",
    "SubscriptionId",
    "SubscriptionName",
    "ChargeType",
    "PublisherType",
    "ReservationId",
    "ReservationName",
    "Frequency",
    "PricingModel",
    "BillingMonth",
)
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
        max_groupings: int = 2,
    ) -> None:
        super().__init__()
        self.max_groupings = max_groupings  # the documented limit; raise it to compare
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
        grouping = dataset.get("grouping") or []
        problem = self._grouping_problem(grouping) or _filter_problem(dataset.get("filter"))
        if problem:
            return json_response(
                arm_error("BadRequest", f"Invalid query definition: {problem}"), 400
            )
        columns = [{"name": "Cost", "type": "Number"}, {"name": "UsageDate", "type": "Number"}]
        for group in grouping:
            if group["type"] == "TagKey":
                columns += [
                    {"name": "TagKey", "type": "String"},
                    {"name": "TagValue", "type": "String"},
                ]
            else:
                columns.append({"name": group["name"], "type": "String"})
        columns.append({"name": "Currency", "type": "String"})
        sums: dict[tuple, float] = {}
        for row in self.cost_rows.get(cost_type, []):
            if not _in_period(row, body.get("timePeriod")):
                continue
            if dataset.get("filter") and not _matches(row, dataset["filter"]):
                continue
            key = [row.get("UsageDate")]
            for group in grouping:
                key += _group_values(row, group)
            key.append(row.get("Currency"))
            sums[tuple(key)] = sums.get(tuple(key), 0.0) + float(row.get("Cost") or 0)
        rows = [[cost, *key] for key, cost in sorted(sums.items(), key=lambda kv: str(kv[0]))]
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

    def _grouping_problem(self, grouping: list[dict[str, Any]]) -> str | None:
        if len(grouping) > self.max_groupings:
            return (
                f"Dataset grouping has {len(grouping)} clauses; "
                f"a query can have up to {self.max_groupings} group by clauses."
            )
        for group in grouping:
            if group.get("type") == "Dimension" and group.get("name") not in GROUPING_DIMENSIONS:
                valid = ",".join(f"'{d}'" for d in GROUPING_DIMENSIONS)
                return f"Invalid dataset grouping: '{group.get('name')}'; valid values: {valid}."
            if group.get("type") not in ("Dimension", "TagKey"):
                return f"Invalid grouping type: '{group.get('type')}'."
        return None


def _group_values(row: dict[str, Any], group: dict[str, Any]) -> list[Any]:
    """A row's value(s) for one grouping: a dimension, or (TagKey, TagValue) of one tag."""
    if group["type"] != "TagKey":
        return [row.get(group["name"])]
    if row.get("TagKey") == group["name"]:
        return [group["name"], row.get("TagValue") or ""]
    return ["", ""]  # untagged rows


def _in_period(row: dict[str, Any], period: dict[str, str] | None) -> bool:
    if not period:
        return True
    day = str(row.get("UsageDate"))
    return period["from"][:10].replace("-", "") <= day <= period["to"][:10].replace("-", "")


def _filter_problem(node: Any) -> str | None:
    if node is None:
        return None
    if not isinstance(node, dict) or len(node) != 1:
        return "a filter has exactly one of and, or, dimensions, tags"
    ((kind, value),) = node.items()
    if kind in ("and", "or"):
        if not isinstance(value, list) or len(value) < 2:
            return f"the logical '{kind}' expression must have at least 2 items"
        return next((p for p in map(_filter_problem, value) if p), None)
    if kind not in ("dimensions", "tags"):
        return f"unknown filter expression '{kind}'"
    if value.get("operator") != "In" or not value.get("values"):
        return f"'{kind}' needs operator In and at least one value"
    if kind == "dimensions" and value.get("name") not in GROUPING_DIMENSIONS:
        return f"Invalid filter dimension: '{value.get('name')}'"
    return None


def _matches(row: dict[str, Any], node: dict[str, Any]) -> bool:
    ((kind, value),) = node.items()
    if kind == "and":
        return all(_matches(row, n) for n in value)
    if kind == "or":
        return any(_matches(row, n) for n in value)
    if kind == "tags":
        return row.get("TagKey") == value["name"] and row.get("TagValue") in value["values"]
    return str(row.get(value["name"]) or "") in [str(v) for v in value["values"]]
