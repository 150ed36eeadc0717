"""Helpers shared by the tests: service URLs, waiting for runs, subprocess workers."""
