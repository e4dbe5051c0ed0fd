"""Scenarios: the YAML format, the runner that plays it, and the observers that judge it."""
