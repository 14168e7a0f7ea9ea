"""A local AWS Price List API (JSON 1.1, ``AWSPriceListService.GetProducts``).

moto does not implement the Pricing API, so this server answers ``GetProducts`` with
real-shaped EC2 product documents, and forwards every other request (EC2 query
API calls such as ``DescribeSpotPriceHistory``) to an upstream moto server. One
endpoint URL then serves both clients, as one ``AwsCredentials`` block's
``endpoint_url`` does.
"""

from __future__ import annotations

import http.client
import json
import re
from typing import Any
from urllib.parse import urlsplit

from tests.servers import Fault, LocalServer, Seen, json_response

AMZ_JSON = "application/x-amz-json-1.1"

REGION_NAMES = {
    "us-east-1": ("US East (N. Virginia)", ""),
    "us-west-2": ("US West (Oregon)", "USW2-"),
    "eu-west-1": ("EU (Ireland)", "EU-"),
    "ap-northeast-1": ("Asia Pacific (Tokyo)", "APN1-"),
}


def ec2_product(
    instance_type: str,
    region: str,
    usd: float,
    *,
    sku: str | None = None,
    **attributes: str,
) -> dict[str, Any]:
    """A Price List product document shaped like the real AmazonEC2 ones."""
    location, prefix = REGION_NAMES.get(region, (region, ""))
    sku = sku or re.sub(r"[^A-Z0-9]", "", f"{instance_type}{region}{usd}".upper())[:16].ljust(
        16, "X"
    )
    attrs = {
        "servicecode": "AmazonEC2",
        "location": location,
        "locationType": "AWS Region",
        "regionCode": region,
        "instanceType": instance_type,
        "instanceFamily": "General purpose",
        "currentGeneration": "Yes",
        "vcpu": "2",
        "memory": "8 GiB",
        "tenancy": "Shared",
        "operatingSystem": "Linux",
        "licenseModel": "No License required",
        "usagetype": f"{prefix}BoxUsage:{instance_type}",
        "operation": "RunInstances",
        "capacitystatus": "Used",
        "preInstalledSw": "NA",
        "marketoption": "OnDemand",
        "servicename": "Amazon Elastic Compute Cloud",
    }
    attrs.update(attributes)
    offer = "JRTCKXETXF"
    return {
        "product": {"productFamily": "Compute Instance", "attributes": attrs, "sku": sku},
        "serviceCode": "AmazonEC2",
        "terms": {
            "OnDemand": {
                f"{sku}.{offer}": {
                    "priceDimensions": {
                        f"{sku}.{offer}.6YS6EN2CT7": {
                            "unit": "Hrs",
                            "endRange": "Inf",
                            "description": f"${usd} per On Demand Linux {instance_type} "
                            "Instance Hour",
                            "appliesTo": [],
                            "rateCode": f"{sku}.{offer}.6YS6EN2CT7",
                            "beginRange": "0",
                            "pricePerUnit": {"USD": f"{usd:.10f}"},
                        }
                    },
                    "sku": sku,
                    "effectiveDate": "2025-06-01T00:00:00Z",
                    "offerTermCode": offer,
                    "termAttributes": {},
                }
            },
            "Reserved": {
                f"{sku}.4NA7Y494T4": {
                    "priceDimensions": {
                        f"{sku}.4NA7Y494T4.6YS6EN2CT7": {
                            "unit": "Hrs",
                            "endRange": "Inf",
                            "description": "Linux/UNIX (Amazon VPC), reserved 1yr no upfront",
                            "appliesTo": [],
                            "rateCode": f"{sku}.4NA7Y494T4.6YS6EN2CT7",
                            "beginRange": "0",
                            "pricePerUnit": {"USD": f"{usd * 0.63:.10f}"},
                        }
                    },
                    "sku": sku,
                    "effectiveDate": "2025-06-01T00:00:00Z",
                    "offerTermCode": "4NA7Y494T4",
                    "termAttributes": {
                        "LeaseContractLength": "1yr",
                        "OfferingClass": "standard",
                        "PurchaseOption": "No Upfront",
                    },
                }
            },
        },
        "version": "20250601000000",
        "publicationDate": "2025-06-01T00:00:00Z",
    }


def aws_error(code: str, message: str) -> dict[str, str]:
    """A JSON 1.1 error body (botocore reads the code after '#')."""
    return {"__type": f"com.amazonaws.pricing.v20171015#{code}", "message": message}


class AwsPricingServer(LocalServer):
    """GetProducts over a fixed product list, paginated; other calls go to ``upstream``."""

    def __init__(
        self, products: list[dict[str, Any]], page_size: int = 100, upstream: str | None = None
    ) -> None:
        super().__init__()
        self.products = products
        self.page_size = page_size
        self.upstream = upstream
        self.get_products_calls: list[dict[str, Any]] = []

    def is_api_request(self, seen: Seen) -> bool:
        return seen.headers.get("x-amz-target", "").startswith("AWSPriceListService.")

    def error_response(self, fault: Fault):
        headers = {"Content-Type": AMZ_JSON, "x-amzn-RequestId": "local-error", **fault.headers}
        return fault.status, headers, json.dumps(fault.body).encode()

    def handle(self, seen: Seen):
        target = seen.headers.get("x-amz-target", "")
        if target == "AWSPriceListService.GetProducts":
            return self._get_products(json.loads(seen.body or b"{}"), seen)
        if target.startswith("AWSPriceListService."):
            return (
                400,
                {"Content-Type": AMZ_JSON},
                json.dumps(
                    aws_error("InvalidParameterException", f"unsupported operation {target}")
                ).encode(),
            )
        if self.upstream:
            return self._forward(seen)
        return 404, {"Content-Type": "text/plain"}, b"no upstream"

    def _get_products(self, body: dict[str, Any], seen: Seen):
        if "Credential=" not in seen.headers.get("authorization", ""):
            return (
                403,
                {"Content-Type": AMZ_JSON},
                json.dumps(aws_error("AccessDeniedException", "missing SigV4 signature")).encode(),
            )
        self.get_products_calls.append(body)
        if body.get("ServiceCode") != "AmazonEC2":
            return (
                400,
                {"Content-Type": AMZ_JSON},
                json.dumps(aws_error("InvalidParameterException", "unknown service code")).encode(),
            )
        matches = [p for p in self.products if _matches(p, body.get("Filters", []))]
        size = min(self.page_size, int(body.get("MaxResults") or self.page_size))
        start = int(str(body.get("NextToken") or "tok-0").split("-")[1])
        page = matches[start : start + size]
        out: dict[str, Any] = {
            "FormatVersion": body.get("FormatVersion", "aws_v1"),
            "PriceList": [json.dumps(p) for p in page],
        }
        if start + size < len(matches):
            out["NextToken"] = f"tok-{start + size}"
        return json_response(out, content_type=AMZ_JSON)

    def _forward(self, seen: Seen):
        target = urlsplit(self.upstream)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        headers = {k: v for k, v in seen.headers.items() if k.lower() != "connection"}
        conn.request(seen.method, seen.path, body=seen.body or None, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        keep = {"content-type"}
        out_headers = {k: v for k, v in resp.getheaders() if k.lower() in keep}
        conn.close()
        return resp.status, out_headers, payload


def _matches(product: dict[str, Any], filters: list[dict[str, str]]) -> bool:
    attrs = product["product"]["attributes"]
    for f in filters:
        if f.get("Type") != "TERM_MATCH":
            return False
        if attrs.get(f["Field"], "").lower() != str(f["Value"]).lower():
            return False
    return True
