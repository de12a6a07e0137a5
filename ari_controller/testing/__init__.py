"""Helpers for tests and the demo that start real parts (a throwaway Postgres, ...)."""
