"""Compute prices: the dated catalog (``catalog_data/``), price-list fetchers per provider, GPU
names, requirement matching and resource prices."""
