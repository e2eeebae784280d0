"""Benchmarks: each script prints a table with baselines run side by side."""
