"""A simulated Asterisk speaking ARI, for tests, the demo and the benchmark."""

from ari_controller.simulator.cli import serve
from ari_controller.simulator.server import Simulator

__all__ = ["Simulator", "serve"]
