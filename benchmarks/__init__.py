"""Benchmarks: `make bench` runs every `bench_*.py` module's `main()`; each reports ratios against a baseline
measured in the same run (CPU time per operation is the figure to trust on a noisy machine)."""
