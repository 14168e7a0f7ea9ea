"""A local Cloud Billing Catalog API plus the OAuth token endpoint it needs.

``POST /token`` accepts a service-account JWT-bearer grant (the signature is checked
against the test key) and issues an access token; ``GET /v1/services/{id}/skus``
requires that token and pages SKUs with ``pageToken`` / ``nextPageToken``.

google-auth (>= 2.4x) also looks up the service account's Regional Access Boundary at
``iamcredentials.googleapis.com/.../allowedLocations`` after a token refresh; tests
redirect that URL here (``rab_endpoint``) so no request leaves loopback.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.servers import LocalServer, Seen, json_response

COMPUTE_SERVICE = "6F81-5844-456A"
AMERICAS = ["us-central1", "us-east1", "us-east4", "us-west1", "northamerica-northeast1"]
EUROPE = ["europe-west1", "europe-west4", "europe-north1"]


def sku(
    description: str,
    regions: list[str],
    usd: float,
    *,
    usage: str = "OnDemand",
    unit: str = "h",
    group: str = "CPU",
) -> dict[str, Any]:
    """A Compute Engine SKU shaped like the real ones (JSON field names)."""
    units = int(usd)
    nanos = round((usd - units) * 1e9)
    sku_id = base64.b32encode(description.encode()).decode()[:12]
    sku_id = f"{sku_id[:4]}-{sku_id[4:8]}-{sku_id[8:12]}"
    return {
        "name": f"services/{COMPUTE_SERVICE}/skus/{sku_id}",
        "skuId": sku_id,
        "description": description,
        "category": {
            "serviceDisplayName": "Compute Engine",
            "resourceFamily": "Compute",
            "resourceGroup": group,
            "usageType": usage,
        },
        "serviceRegions": regions,
        "pricingInfo": [
            {
                "summary": "",
                "pricingExpression": {
                    "usageUnit": unit,
                    "displayQuantity": 1,
                    "tieredRates": [
                        {
                            "startUsageAmount": 0,
                            "unitPrice": {
                                "currencyCode": "USD",
                                "units": str(units),
                                "nanos": nanos,
                            },
                        }
                    ],
                    "usageUnitDescription": "hour" if unit == "h" else "gibibyte hour",
                    "baseUnit": "s" if unit == "h" else "By.s",
                    "baseUnitDescription": "second",
                    "baseUnitConversionFactor": 3600,
                },
                "currencyConversionRate": 1,
                "effectiveTime": "2025-06-01T00:00:00.000Z",
            }
        ],
        "serviceProviderName": "Google",
        "geoTaxonomy": {"type": "MULTI_REGIONAL", "regions": regions},
    }


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def service_account_info(key: rsa.RSAPrivateKey, token_uri: str, private_key_id: str) -> dict:
    """A service-account key file's contents, with ``token_uri`` on the local server."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": "opsflow-test",
        "private_key_id": private_key_id,
        "private_key": pem,
        "client_email": "pricing-reader@opsflow-test.iam.gserviceaccount.com",
        "client_id": "100000000000000000001",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "universe_domain": "googleapis.com",
    }


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class GcpCatalogServer(LocalServer):
    def __init__(
        self, skus: list[dict[str, Any]], public_key: rsa.RSAPublicKey, page_size: int = 100
    ) -> None:
        super().__init__()
        self.skus = skus
        self.public_key = public_key
        self.page_size = page_size
        self.tokens: set[str] = set()
        self.jwt_headers: list[dict[str, Any]] = []
        self.jwt_claims: list[dict[str, Any]] = []
        self.rab_lookups = 0

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def rab_endpoint(self, service_account_email: str) -> str:
        """Stand-in for google-auth's ``get_service_account_rab_endpoint``."""
        return f"{self.url}/v1/projects/-/serviceAccounts/{service_account_email}/allowedLocations"

    def is_api_request(self, seen: Seen) -> bool:
        return seen.path.startswith("/v1/services/")

    def handle(self, seen: Seen):
        parts = urlsplit(seen.path)
        if seen.method == "POST" and parts.path == "/token":
            return self._token(seen)
        if seen.method == "GET" and parts.path == f"/v1/services/{COMPUTE_SERVICE}/skus":
            return self._skus(seen, {k: v[0] for k, v in parse_qs(parts.query).items()})
        if seen.method == "GET" and parts.path.endswith("/allowedLocations"):
            self.rab_lookups += 1
            return json_response({"locations": ["us-central1"], "encodedLocations": "0x1"})
        return _google_error(404, "NOT_FOUND", f"{parts.path} not found")

    def _token(self, seen: Seen):
        form = {k: v[0] for k, v in parse_qs(seen.body.decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return json_response({"error": "unsupported_grant_type"}, 400)
        try:
            head, payload, signature = form["assertion"].split(".")
            self.public_key.verify(
                _b64(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except Exception:
            return json_response(
                {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, 400
            )
        self.jwt_headers.append(json.loads(_b64(head)))
        self.jwt_claims.append(json.loads(_b64(payload)))
        token = "ya29.local-" + secrets.token_urlsafe(16)
        self.tokens.add(token)
        return json_response({"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    def _skus(self, seen: Seen, query: dict[str, str]):
        auth = seen.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth.removeprefix("Bearer ") not in self.tokens:
            return _google_error(
                401, "UNAUTHENTICATED", "Request had invalid authentication credentials."
            )
        size = min(self.page_size, int(query.get("pageSize") or self.page_size))
        start = int(query.get("pageToken") or 0)
        page = self.skus[start : start + size]
        nxt = str(start + size) if start + size < len(self.skus) else ""
        return json_response({"skus": page, "nextPageToken": nxt})


def _google_error(code: int, status: str, message: str):
    return json_response({"error": {"code": code, "message": message, "status": status}}, code)


def google_error_body(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}
