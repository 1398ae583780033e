"""Binance spot and USD-M futures: REST klines, exchange info, time, and the archives."""
