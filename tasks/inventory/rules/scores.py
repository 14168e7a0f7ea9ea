"""Optimization scores: one number per resource from the recommendations made on it.

Example:
    ```python
    from tasks.inventory.model import Resource
    from tasks.inventory.rules.scores import optimization_scores

    volume = Resource(id="vol-0abc", provider="aws", account="1", region="us-east-1",
                      kind="volume", type="gp3")
    print(optimization_scores([volume], []))  # {'vol-0abc': 100}: nothing to improve
    ```
"""

from __future__ import annotations

from collections.abc import Iterable

from tasks.inventory.model import Resource
from tasks.inventory.rules.recommendation import Recommendation


def optimization_scores(
    resources: Iterable[Resource], recommendations: Iterable[Recommendation]
) -> dict[str, int]:
    """Optimization score per resource id: 100 = nothing to improve, 0 = all waste.

    Each recommendation on a resource subtracts ``10 + 80 x share`` points, where
    ``share`` is its monthly saving over the resource's current monthly cost (capped at
    1; 0 when the cost is unknown or zero). So a missing tag costs 10 points, halving an
    instance's cost 50, an idle resource 90; the score is ``max(0, 100 - total)``,
    rounded. More recommendations, or larger savings, always mean a lower score.
    Recommendations without a resource (commitments) score no resource.

    Example:
        ```python
        from tasks.inventory.model import Resource
        from tasks.inventory.rules.resources import recommend_resources
        from tasks.inventory.rules.scores import optimization_scores
        from tasks.pricing.resource_prices import price_resources

        volume = Resource(
            id="vol-0abc", provider="aws", account="123456789012", region="us-east-1",
            kind="volume", type="gp3", state="available", size_gib=100, tags={"team": "data"},
        )
        resources = price_resources([volume])
        recs = recommend_resources(resources, required_tags=["team"])
        print(optimization_scores(resources, recs)["vol-0abc"])  # 10: idle, all of it saved
        ```
    """
    penalty: dict[str, float] = {r.id: 0.0 for r in resources}
    for rec in recommendations:
        if rec.resource_id not in penalty:
            continue
        current = rec.current_monthly_cost
        share = min(1.0, rec.estimated_monthly_saving / current) if current else 0.0
        penalty[rec.resource_id] += 10 + 80 * share
    return {rid: max(0, round(100 - p)) for rid, p in penalty.items()}
