"""One name per GPU model across providers.

AWS names GPUs by instance family (p4d = A100), GCP by accelerator type
(``nvidia-tesla-a100``) and Azure by VM series (ND A100 v4). Requests and catalog
entries both go through ``normalize_gpu`` so that ``nvidia-a100`` matches all three.

Example:
    ```python
    from tasks.pricing.gpu import normalize_gpu

    print(normalize_gpu("nvidia-tesla-a100"), normalize_gpu("A10G"))  # nvidia-a100 nvidia-a10
    ```
"""

from __future__ import annotations

import re

# canonical name -> (display name, aliases). A10G is AWS's variant of the A10 and
# is sold as the same class, so both names resolve to the one canonical model.
GPU_MODELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "nvidia-t4": ("NVIDIA T4", ("t4", "tesla-t4", "nvidia-tesla-t4", "g4dn", "nc-t4-v3", "nct4v3")),
    "nvidia-l4": ("NVIDIA L4", ("l4", "g6", "g2", "nvidia-l4-vws")),
    "nvidia-a10": ("NVIDIA A10/A10G", ("a10", "a10g", "nvidia-a10g", "g5", "nvadsa10v5")),
    "nvidia-v100": ("NVIDIA V100", ("v100", "tesla-v100", "nvidia-tesla-v100", "p3", "ncv3")),
    "nvidia-a100": (
        "NVIDIA A100",
        ("a100", "tesla-a100", "nvidia-tesla-a100", "nvidia-a100-80gb", "a100-80gb", "p4d", "p4de"),
    ),
    "nvidia-h100": ("NVIDIA H100", ("h100", "nvidia-h100-80gb", "nvidia-h100-mega-80gb", "p5")),
}

_ALIASES: dict[str, str] = {}
for _canonical, (_display, _aliases) in GPU_MODELS.items():
    _ALIASES[_canonical] = _canonical
    for _alias in _aliases:
        _ALIASES[_alias] = _canonical


def _key(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def normalize_gpu(name: str) -> str:
    """Return the canonical GPU name for ``name`` (any provider spelling).

    Raises:
        ValueError: naming the known GPU types when ``name`` is not one of them.
    """
    key = _key(name)
    if key in _ALIASES:
        return _ALIASES[key]
    if not key.startswith("nvidia-") and f"nvidia-{key}" in _ALIASES:
        return _ALIASES[f"nvidia-{key}"]
    raise ValueError(f"unknown GPU type {name!r}; known types: {', '.join(GPU_MODELS)}")


def display_name(canonical: str) -> str:
    return GPU_MODELS[canonical][0]
