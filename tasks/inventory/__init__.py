"""Resource inventory: one resource model, a collector per provider (aws, azure, gcp) and the
savings rules (right-sizing, idle, commitments, tags, scores)."""
