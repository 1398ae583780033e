"""Helpers shared by the test suite: a real Redis for the tests and the `eventually` wait."""
