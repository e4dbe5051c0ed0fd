"""Benchmarks: each script prints a table and writes JSON; see README "Load and benchmarks"."""
