"""The hot layer: recent closed candles as prebuilt response bytes, in process or in Redis."""
