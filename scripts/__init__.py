"""Load test, benchmarks and helpers; ``scripts.synthpeer`` is the shared synthetic peer."""
