"""Hypothesis profile: no per-example deadline, since timing belongs in bench/ and a
loaded 2-core CI machine must not turn a slow example into a failure."""

from hypothesis import settings

settings.register_profile("candlevault", deadline=None)
settings.load_profile("candlevault")
