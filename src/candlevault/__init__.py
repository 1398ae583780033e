"""candlevault: complete, exact crypto candle history, served fast."""

__version__ = "0.1.0"
