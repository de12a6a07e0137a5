"""Shared test set-up: each area keeps its fixtures in its own plugin module."""

pytest_plugins = [
    "tests.fixtures_postgres",
    "tests.fixtures_simulator",
    "tests.console_client",
]
