"""The compute price catalog: its schema, the bundled copy and refreshed versions.

A catalog is one JSON file per provider (``aws.json``, ``gcp.json``, ``azure.json``).
The bundled files ship inside the package; ``refresh_price_catalog`` writes new
versions under ``<data dir>/price_catalog/versions/<version>/`` and then swaps the
``CURRENT`` pointer atomically, so a reader sees either the old or the new
version, never a half-written one.

Example:
    ```python
    from tasks.pricing.catalog import load_catalog

    catalog = load_catalog()  # the current refreshed version, else "bundled"
    aws = catalog.providers["aws"]
    print(catalog.version, aws.as_of, len(aws.instances), [r.id for r in aws.regions][:3])
    ```
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Literal

from prefect import task
from pydantic import BaseModel, Field, model_validator

from tasks.common.atomic import atomic_directory, write_text_atomic
from tasks.common.paths import catalog_dir

Provider = Literal["aws", "gcp", "azure"]
PROVIDERS: tuple[Provider, ...] = ("aws", "gcp", "azure")
Category = Literal["general", "compute", "memory", "gpu"]
Geo = Literal["us", "europe", "asia", "other"]
InterruptionRisk = Literal["low", "medium", "high"]


class GpuSpec(BaseModel):
    """GPUs attached to one instance type; ``model`` is the canonical name (tasks.pricing.gpu)."""

    model: str
    count: float = Field(gt=0, description="GPUs per instance (fractional for shared GPUs)")
    memory_gib: float = Field(gt=0, description="Memory per GPU in GiB")


class RegionPrice(BaseModel):
    """Linux hourly prices in USD for one instance type in one region."""

    on_demand: float = Field(gt=0)
    spot: float | None = Field(default=None, gt=0)


class InstanceType(BaseModel):
    name: str
    family: str
    category: Category
    vcpus: int = Field(gt=0)
    memory_gib: float = Field(gt=0)
    gpu: GpuSpec | None = None
    spot_interruption: InterruptionRisk | None = Field(
        default=None,
        description="Published or typical spot/preemption interruption band",
    )
    prices: dict[str, RegionPrice] = Field(description="Region id -> prices")


class Region(BaseModel):
    id: str
    name: str
    geo: Geo
    block_storage_gib_month: float = Field(
        gt=0,
        description="USD per GiB-month of the default SSD block volume (gp3, pd-balanced, ...)",
    )


class ProviderCatalog(BaseModel):
    provider: Provider
    currency: Literal["USD"] = "USD"
    operating_system: Literal["linux"] = "linux"
    as_of: date
    source: str = Field(description="Where the prices come from (URLs, API, method)")
    notes: str = ""
    regions: list[Region]
    instances: list[InstanceType]

    @model_validator(mode="after")
    def _prices_name_known_regions(self) -> ProviderCatalog:
        known = {r.id for r in self.regions}
        for inst in self.instances:
            unknown = set(inst.prices) - known
            if unknown:
                raise ValueError(f"{inst.name}: prices for undeclared regions {sorted(unknown)}")
        return self

    def region(self, region_id: str) -> Region:
        for r in self.regions:
            if r.id == region_id:
                return r
        raise KeyError(region_id)

    def instance(self, name: str) -> InstanceType | None:
        """The instance type called ``name`` (exactly as the catalog spells it), or None."""
        return next((i for i in self.instances if i.name == name), None)


class Catalog(BaseModel):
    """All providers' catalogs plus where they were loaded from."""

    version: str
    providers: dict[str, ProviderCatalog]

    def as_of(self) -> date:
        return min(c.as_of for c in self.providers.values())


def bundled_path(provider: str) -> Path:
    return Path(str(resources.files("tasks.pricing") / "catalog_data" / f"{provider}.json"))


def _versions_dir() -> Path:
    return catalog_dir() / "versions"


def current_version_dir() -> Path | None:
    """The directory of the current refreshed version, or None to use the bundled one."""
    pointer = catalog_dir() / "CURRENT"
    if not pointer.exists():
        return None
    path = _versions_dir() / pointer.read_text().strip()
    return path if path.is_dir() else None


def load_provider(provider: str, version_dir: Path | None = None) -> ProviderCatalog:
    path = (version_dir / f"{provider}.json") if version_dir else bundled_path(provider)
    return ProviderCatalog.model_validate_json(path.read_text())


def load_catalog() -> Catalog:
    """Load the current catalog: the latest refreshed version, else the bundled one."""
    vdir = current_version_dir()
    return Catalog(
        version=vdir.name if vdir else "bundled",
        providers={p: load_provider(p, vdir) for p in PROVIDERS},
    )


@task(name="load-price-catalog", retries=2, retry_delay_seconds=1)
def load_price_catalog() -> Catalog:
    """``load_catalog`` as a task: the current catalog, read inside a flow run.

    Example:
        ```python
        from prefect import flow

        from tasks.pricing.catalog import load_price_catalog


        @flow
        def catalog_age() -> str:
            catalog = load_price_catalog()
            return f"{catalog.version}: prices as of {catalog.as_of()}"
        ```
    """
    return load_catalog()


def write_catalog_version(catalogs: dict[str, ProviderCatalog]) -> str:
    """Write a complete new catalog version and make it current, atomically.

    Every provider file is written into a temporary directory first
    (``tasks.common.atomic.atomic_directory``: fsynced, then renamed into ``versions/``);
    only then is ``CURRENT`` replaced, atomically too. A crash at any point leaves the
    previous version current.

    Args:
        catalogs: one validated ProviderCatalog per provider (all of PROVIDERS).

    Returns:
        The new version name.
    """
    missing = set(PROVIDERS) - set(catalogs)
    if missing:
        raise ValueError(f"catalog version must hold every provider; missing {sorted(missing)}")
    versions = _versions_dir()
    versions.mkdir(parents=True, exist_ok=True)
    version = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    with atomic_directory(versions / version) as folder:
        for provider, cat in catalogs.items():
            data = json.dumps(cat.model_dump(mode="json"), indent=1, sort_keys=False)
            ProviderCatalog.model_validate_json(data)  # never publish what we cannot read back
            write_text_atomic(folder / f"{provider}.json", data)
    write_text_atomic(catalog_dir() / "CURRENT", version)
    return version
