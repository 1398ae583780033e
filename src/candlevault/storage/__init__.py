"""The warm layer: complete candle history (SQLite by default, MongoDB when configured)."""
