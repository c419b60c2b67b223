"""Alternative implementations of our modules, swapped into a copy of an
artifact to measure what a choice costs (benchmarks/cold_start.py)."""
