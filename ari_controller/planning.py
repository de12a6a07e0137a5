"""Who to call for a route at a moment: the configuration's people, schedules and escalation
policies compiled once (calendar files are read here), then planned per call, purely."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable

from ari_controller.config import Config
from ari_controller.oncall.plan import CallPlan, Directory, plan

PolicyPlanner = Callable[[str, dt.datetime, random.Random], CallPlan]


def make_planner(config: Config, directory: Directory | None = None) -> PolicyPlanner:
    """Schedules compiled once per configuration; each call plans for its own moment."""
    directory = directory or Directory.build(config.users, config.schedules)
    policies = {p.id: p for p in config.escalation_policies}

    def planner(policy_id: str, at: dt.datetime, rng: random.Random) -> CallPlan:
        return plan(policies[policy_id], at, rng, directory)

    return planner
