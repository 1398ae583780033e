"""The one write path: upsert 1m, derive the touched higher-timeframe buckets, notify."""
