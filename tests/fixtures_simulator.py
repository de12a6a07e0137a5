"""Fixtures for the Asterisk simulator (filled in by the simulator work)."""
