"""A recording proxy in front of moto for AWS Cost Explorer, and helpers to queue results.

moto 5.2 implements ``GetCostAndUsage`` (answers queued through
``/moto-api/static/ce/cost-and-usage-results``) but not ``GetDimensionValues``; the
proxy answers that one call itself and forwards everything else, recording requests and
injecting faults (throttling, access denied) on Cost Explorer calls only.
"""

from __future__ import annotations

import json
import urllib.request

from tests.servers import Seen, json_response
from tests.servers.aws_pricing import AMZ_JSON, AwsPricingServer

MOTO_ACCOUNT = "123456789012"


CE_TARGET = "AWSInsightsIndexService."
MOTO_ACCOUNT = "123456789012"


def ce_error(code: str, message: str) -> dict[str, str]:
    return {"__type": f"com.amazon.awsinsightsindexservice#{code}", "Message": message}


class CostExplorerProxy(AwsPricingServer):
    """Forwards every call to moto except GetDimensionValues, which it answers from
    ``dimensions`` (paginated, ``page_size`` values per page). Faults apply to Cost
    Explorer calls only, so STS still answers."""

    def __init__(self, upstream: str, dimensions: dict[str, list[str]] | None = None):
        super().__init__(products=[], upstream=upstream)
        self.dimensions = dimensions or {}
        self.page_size = 2

    def is_api_request(self, seen: Seen) -> bool:
        return seen.headers.get("x-amz-target", "").startswith(CE_TARGET)

    def ce_calls(self, operation: str) -> list[dict]:
        return [
            json.loads(s.body)
            for s in self.requests
            if s.headers.get("x-amz-target") == CE_TARGET + operation
        ]

    def handle(self, seen: Seen):
        if seen.headers.get("x-amz-target") == CE_TARGET + "GetDimensionValues":
            body = json.loads(seen.body)
            values = self.dimensions.get(body["Dimension"], [])
            start = int(body.get("NextPageToken") or 0)
            page = values[start : start + self.page_size]
            out = {
                "DimensionValues": [{"Value": v, "Attributes": {}} for v in page],
                "ReturnSize": len(page),
                "TotalSize": len(values),
            }
            if start + self.page_size < len(values):
                out["NextPageToken"] = str(start + self.page_size)
            return json_response(out, content_type=AMZ_JSON)
        return super().handle(seen)


def queue_ce(moto_url: str, results: list[dict], account_id: str = MOTO_ACCOUNT) -> None:
    body = json.dumps({"results": results, "account_id": account_id}).encode()
    req = urllib.request.Request(
        f"{moto_url}/moto-api/static/ce/cost-and-usage-results",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback moto
        assert resp.status == 201


def group(service: str, second: str, billed: str, amortized: str, qty="1", unit="N/A"):
    return {
        "Keys": [service, second],
        "Metrics": {
            "UnblendedCost": {"Amount": billed, "Unit": "USD"},
            "AmortizedCost": {"Amount": amortized, "Unit": "USD"},
            "UsageQuantity": {"Amount": qty, "Unit": unit},
        },
    }


def day(start: str, end: str, groups: list[dict], estimated=False) -> dict:
    return {
        "TimePeriod": {"Start": start, "End": end},
        "Total": {},
        "Groups": groups,
        "Estimated": estimated,
    }


def one_day(start: str, end: str, billed: str) -> list[dict]:
    """One queued GetCostAndUsage result: one day, one AWS Lambda group."""
    return [{"ResultsByTime": [day(start, end, [group("AWS Lambda", "x", billed, billed)])]}]
