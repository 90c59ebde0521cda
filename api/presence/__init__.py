"""Presence-based attendance: what the media plane saw, turned into intervals and status."""
