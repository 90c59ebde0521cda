"""Shared test infrastructure that both tests/ and scripts/ import."""
