"""The exchange simulator: a stand-in for Binance and Bybit on loopback.

`candlevault sim` serves the venues' REST endpoints, the data.binance.vision archives
(and, with the real-time work, their WebSocket streams) from one seeded, deterministic
market, with the venues' rate limits, bans, outages and injectable faults, so that every
test and benchmark of candlevault runs without the internet.

It is a separate world: it shares only `candlevault.domain` and
`candlevault.aggregation` with candlevault (so both derive higher timeframes with the
same code) and talks to candlevault only over sockets, exactly as a real exchange
does; the layering test enforces that nothing else is imported either way.
"""
