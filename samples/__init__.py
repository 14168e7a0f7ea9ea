"""Bundled sample data (``samples/data/``) and the generators that made it: FOCUS exports, a
three-cloud inventory, incident scenarios with ground truth. Depends on ``tasks``; nothing in
``tasks`` depends on it."""
