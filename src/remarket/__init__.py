"""remarket: a real-time remarketing engine for a store's existing customers."""

__version__ = "0.1.0"
