"""Real-time: venue streams, one candle builder per symbol, repair after disconnects."""
