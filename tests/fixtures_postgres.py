"""Fixtures for a throwaway Postgres (filled in by the store work)."""
