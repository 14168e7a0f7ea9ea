"""Savings rules over the shared inventory and cost rows, the same for every cloud.

- ``recommendation``: the ``Recommendation`` every rule returns, its stable id, shared helpers;
- ``resources``: right-size, idle and tagging rules over priced ``Resource`` objects
  (``recommend_resources``);
- ``commitments``: commitment estimates from FOCUS cost rows (``recommend_commitments``,
  ``commitment_as_of``);
- ``scores``: optimization score per resource (``optimization_scores``).

The names ``flows.collect_costs`` imports from here are re-exported.
"""

from tasks.inventory.rules.commitments import commitment_as_of, recommend_commitments
from tasks.inventory.rules.recommendation import Recommendation

__all__ = ["Recommendation", "commitment_as_of", "recommend_commitments"]
