"""The cold layer: one client per venue, one weight limiter per venue and IP."""
