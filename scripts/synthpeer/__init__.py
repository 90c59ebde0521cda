"""The synthetic classroom peer shared by integration tests, load test and benchmarks."""
