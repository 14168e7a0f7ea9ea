"""Fetched price quotes and how they are merged into a provider catalog.

The provider fetchers (``tasks.pricing.aws``, ``tasks.pricing.azure``, ``tasks.pricing.gcp``)
all return a ``PriceTable``: instance type -> region -> ``Quote``. ``merge_prices`` applies such a
table to a ``ProviderCatalog``: prices that came back replace the old ones, prices
the API did not return are kept and counted, nothing is ever set to zero.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from typing import Literal

from pydantic import BaseModel, Field

from tasks.pricing.catalog import ProviderCatalog, RegionPrice


class Quote(BaseModel):
    """Hourly Linux prices in USD for one instance type in one region, as fetched."""

    on_demand: float | None = Field(default=None, gt=0)
    spot: float | None = Field(default=None, gt=0)


PriceTable = dict[str, dict[str, Quote]]
"""Instance type -> region id -> quote."""


class PriceChange(BaseModel):
    """One price that a refresh set (changed or newly added)."""

    provider: str
    instance_type: str
    region: str
    price: Literal["on_demand", "spot"]
    old: float | None = Field(description="Previous USD/hour; None when the price is new")
    new: float
    change_pct: float | None = Field(description="(new-old)/old in percent; None when new")


class MergeOutcome(BaseModel):
    """What ``merge_prices`` did to one provider catalog."""

    catalog: ProviderCatalog
    prices_updated: int = Field(description="Prices that came back from the API and were set")
    prices_changed: int = Field(description="Of those, prices whose value differs from before")
    prices_missing: int = Field(description="Catalog prices in scope the API did not return")
    missing: list[str] = Field(description="'instance/region/price' for each missing price")
    changes: list[PriceChange]


_REFRESH_NOTE = re.compile(r"\n?Refresh note:[^\n]*")


def _pct(old: float, new: float) -> float:
    return round((new - old) / old * 100.0, 2)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return round(a, 6) == round(b, 6)


def merge_prices(
    catalog: ProviderCatalog,
    fetched: PriceTable,
    regions: Iterable[str],
    *,
    source: str,
    as_of: date,
) -> MergeOutcome:
    """Apply fetched quotes to ``catalog`` for the given regions.

    Args:
        catalog: the current provider catalog.
        fetched: quotes returned by the provider's API.
        regions: the region ids that were refreshed; prices elsewhere are left alone
            and not counted.
        source: what the refreshed catalog's ``source`` becomes.
        as_of: what the refreshed catalog's ``as_of`` becomes.

    Returns:
        The new catalog (validated) and counts of updated, changed and missing prices.

    Example:
        ```python
        from datetime import date

        from tasks.pricing.catalog import load_catalog
        from tasks.pricing.prices import Quote, merge_prices

        aws = load_catalog().providers["aws"]
        fetched = {"m7i.large": {"us-east-1": Quote(on_demand=0.1)}}
        outcome = merge_prices(
            aws, fetched, ["us-east-1"], source="AWS Price List API", as_of=date.today()
        )
        print(outcome.prices_updated, outcome.prices_missing)  # 1, and every price not fetched
        ```
    """
    scope = sorted(set(regions))
    updated = changed = 0
    missing: list[str] = []
    changes: list[PriceChange] = []

    def record(inst: str, region: str, kind: Literal["on_demand", "spot"], old, new) -> None:
        nonlocal updated, changed
        updated += 1
        if not _same(old, new):
            changed += 1
            changes.append(
                PriceChange(
                    provider=catalog.provider,
                    instance_type=inst,
                    region=region,
                    price=kind,
                    old=old,
                    new=new,
                    change_pct=_pct(old, new) if old else None,
                )
            )

    instances = []
    for inst in catalog.instances:
        prices = dict(inst.prices)
        got = fetched.get(inst.name, {})
        for region in scope:
            old = prices.get(region)
            quote = got.get(region)
            od = quote.on_demand if quote else None
            sp = quote.spot if quote else None
            if old is None:
                if od is None:
                    continue  # not in the catalog and not returned: nothing to say
                record(inst.name, region, "on_demand", None, od)
                if sp is not None:
                    record(inst.name, region, "spot", None, sp)
                prices[region] = RegionPrice(on_demand=od, spot=sp)
                continue
            new_od, new_sp = old.on_demand, old.spot
            if od is not None:
                record(inst.name, region, "on_demand", old.on_demand, od)
                new_od = od
            else:
                missing.append(f"{inst.name}/{region}/on_demand")
            if sp is not None:
                record(inst.name, region, "spot", old.spot, sp)
                new_sp = sp
            elif old.spot is not None:
                missing.append(f"{inst.name}/{region}/spot")
            prices[region] = RegionPrice(on_demand=new_od, spot=new_sp)
        instances.append(inst.model_copy(update={"prices": prices}))

    notes = _REFRESH_NOTE.sub("", catalog.notes).strip()
    if missing:
        kept = (
            f"Refresh note: {len(missing)} price(s) the API did not return on {as_of} "
            f"were kept from the previous version (as of {catalog.as_of})."
        )
        notes = f"{notes}\n{kept}" if notes else kept
    data = catalog.model_dump(mode="json")
    data.update(
        as_of=as_of.isoformat(),
        source=source,
        notes=notes,
        instances=[i.model_dump(mode="json") for i in instances],
    )
    return MergeOutcome(
        catalog=ProviderCatalog.model_validate(data),
        prices_updated=updated,
        prices_changed=changed,
        prices_missing=len(missing),
        missing=missing,
        changes=changes,
    )


def biggest_changes(changes: Iterable[PriceChange], limit: int = 25) -> list[PriceChange]:
    """The ``limit`` changes with the largest relative move; new prices come last.

    Args:
        changes: price changes from one or more merges.
        limit: how many to return.

    Returns:
        Changes sorted by absolute percentage change, largest first.
    """
    return sorted(
        changes,
        key=lambda c: (
            c.change_pct is None,
            -abs(c.change_pct or 0.0),
            c.provider,
            c.instance_type,
        ),
    )[:limit]


def refresh_scope(
    catalogs: dict[str, ProviderCatalog],
    providers: Iterable[str],
    regions: Iterable[str] | None = None,
) -> dict[str, list[str]]:
    """Which regions to refresh for each requested provider.

    Args:
        catalogs: the current provider catalogs.
        providers: providers to refresh.
        regions: region ids to limit the refresh to (any provider's ids, mixed);
            None for every region each catalog declares.

    Returns:
        Provider -> sorted region ids (possibly empty when ``regions`` names none of
        that provider's regions).

    Raises:
        ValueError: naming ``regions`` and the ids no requested provider knows.
    """
    chosen = list(dict.fromkeys(providers))
    known = {p: [r.id for r in catalogs[p].regions] for p in chosen}
    if regions is None:
        return {p: sorted(ids) for p, ids in known.items()}
    wanted = set(regions)
    all_known = {r for ids in known.values() for r in ids}
    unknown = sorted(wanted - all_known)
    if unknown:
        sample = ", ".join(sorted(all_known)[:40])
        raise ValueError(
            f"regions: {unknown} are not regions of the {'/'.join(chosen)} catalog(s); "
            f"known regions: {sample}"
        )
    return {p: sorted(wanted & set(ids)) for p, ids in known.items()}
