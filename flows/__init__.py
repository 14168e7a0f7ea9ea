"""Capability flows. ``flows.registry.REGISTRY`` is the list of them."""

from flows.registry import REGISTRY, FlowSpec, get_spec

__all__ = ["REGISTRY", "FlowSpec", "get_spec"]
