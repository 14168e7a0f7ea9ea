"""Cost collection: the FOCUS 1.2 schema and normalizer, the Parquet cost dataset, analysis,
export files, and one mapping module per provider cost API (aws, azure, gcp)."""
