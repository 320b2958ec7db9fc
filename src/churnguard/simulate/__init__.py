"""Synthetic shop with exact ground truth: demo data and the yardstick for tests.

``simulate(n_users=..., days=..., seed=..., out_dir=...)`` writes events, users, items and
historical campaigns as Parquet, plus ``truth/`` tables whose churn probabilities and action
effects are exact (forward recursion over the hidden alive/dormant chain, see ``truth.py``).
Scenarios are documented in ``scenarios.py``; the dynamics in ``process.py``.
``continue_shop`` carries a shop simulated with ``keep_state=True`` on after churnguard's
deliveries (``continuation.py``). ``Surge`` injects a complaint surge (``scenarios.py``).
"""

from churnguard.simulate.continuation import ContinuationResult, continue_shop, read_delivered
from churnguard.simulate.process import ACTIONS
from churnguard.simulate.runner import SimulationResult, default_cutoffs, simulate
from churnguard.simulate.scenarios import SCENARIOS, Surge

__all__ = ["ACTIONS", "SCENARIOS", "ContinuationResult", "SimulationResult", "Surge",
           "continue_shop", "default_cutoffs", "read_delivered", "simulate"]
