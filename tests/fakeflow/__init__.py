"""Fake components for runner tests: no ML, each records its name when it runs."""
