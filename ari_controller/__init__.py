"""Self-hosted live call routing for on-call teams, on Asterisk (an ARI Stasis application)."""

__version__ = "0.1.0"
