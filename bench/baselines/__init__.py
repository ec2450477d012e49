"""Baselines for bench/serve_bench.py: honest, idiomatic alternatives, never used by the product."""
