"""Offline tools: the worker's own core over files instead of topics (replay: backfill, what-if)
and fitting the repurchase model to a store's history (fit)."""
