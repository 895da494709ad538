"""Benchmarks: speed of the engine against a plain reference loop."""
