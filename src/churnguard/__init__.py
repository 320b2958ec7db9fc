"""churnguard: predict, explain and prevent customer churn in online shops."""

import os as _os

# LightGBM's OpenMP threads busy-wait between parallel regions by default. With DuckDB's threads
# (or any other process) on the same few cores that spinning made boosting 15-150x slower in our
# measurements (2 cores: 0.075 s vs 0.005 s per round). Passive waiting costs nothing measurable
# when the cores are free. It must be set before the OpenMP runtime loads; a user's own setting
# wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
