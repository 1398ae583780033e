"""Pure domain values: candles, trades, timeframes, venues, symbols, exact decimals.

Nothing here does I/O or reads the clock; every layer above builds on these values.
"""
