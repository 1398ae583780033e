"""Fetching history: bootstrap planning and running, archive import, gaps."""
