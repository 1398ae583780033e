"""Bybit v5 spot and linear: REST klines, instruments and time."""
