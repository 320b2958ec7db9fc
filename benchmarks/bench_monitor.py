"""The calibrated drift check's speed and its behaviour on unchanged and shifted batches.

    python benchmarks/bench_monitor.py [--features 71] [--reference 20000] [--batch 20000]
        [--bootstrap 500] [--repeats 5] [--threads 2]

Synthetic, seeded data shaped like churnguard's features (normal, counts, skewed amounts, gaps
with missing values, a category, flags, a constant), ``--features`` columns of them. Times
:func:`churnguard.monitor.drift_test` (binning the reference, binning the batch, the bootstrap
null of every feature, p-values and Benjamini–Hochberg), best and median of ``--repeats``, with
numpy limited to ``--threads`` threads. Feature computation from the store is not included (it
is the store's feature query, timed in bench_features.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _frame(rng, n: int, features: int):  # noqa: ANN001, ANN202
    import numpy as np
    import pandas as pd

    makers = [
        lambda: rng.normal(0, 1, n),
        lambda: rng.poisson(2.0, n).astype(float),
        lambda: rng.lognormal(3, 1, n),
        lambda: np.where(rng.random(n) < 0.2, np.nan, rng.exponential(30, n)),
        lambda: rng.poisson(15.0, n).astype(float),
        lambda: (rng.random(n) < 0.3).astype(float),
        lambda: pd.Series(rng.choice(list("abcdefgh"), n), dtype="category"),
        lambda: np.ones(n),
    ]
    return pd.DataFrame({f"f{j:02d}": makers[j % len(makers)]() for j in range(features)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=71)
    parser.add_argument("--reference", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--bootstrap", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(args.threads)
    import numpy as np

    from churnguard.monitor import drift_test

    rng = np.random.default_rng(0)
    reference = _frame(rng, args.reference, args.features)
    batch = _frame(rng, args.batch, args.features)
    times, alarms = [], 0
    for seed in range(args.repeats):
        start = time.perf_counter()
        result = drift_test(reference, batch, bootstrap=args.bootstrap, seed=seed)
        times.append(time.perf_counter() - start)
        alarms += sum(r.alarm for r in result)
    print(f"drift_test: {args.features} features, reference {args.reference:,} rows, batch "
          f"{args.batch:,} rows, B={args.bootstrap}, {args.threads} thread(s): best "
          f"{min(times):.2f} s, median {statistics.median(times):.2f} s over {args.repeats}; "
          f"{alarms} alarm(s) in {args.repeats * args.features} unchanged checks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
