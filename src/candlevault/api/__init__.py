"""The HTTP API: our v1 routes, Binance-compatible klines, admin, system and metrics."""
