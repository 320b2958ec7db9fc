"""Time ``simulate`` at 100,000 customers x 365 days and report seconds and peak RSS.

Run: ``.venv/bin/python benchmarks/bench_simulate.py [--users N] [--days D]``. Output goes to
benchmarks/.data/ (git-ignored). The target is under 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import time
from pathlib import Path

from churnguard.simulate import simulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import write_section  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenario", default="default")
    args = parser.parse_args(argv)
    out = Path(__file__).resolve().parent / ".data" / "bench_simulate"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    result = simulate(n_users=args.users, days=args.days, seed=args.seed, out_dir=out,
                      scenario=args.scenario)
    seconds = time.perf_counter() - t0
    # ru_maxrss is in KiB on Linux.
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"simulate users={args.users} days={args.days} scenario={args.scenario}: "
          f"{seconds:.1f} s, peak RSS {peak_mib:.0f} MiB, events={result.n_events:,}, "
          f"campaign rows={result.n_campaign_rows:,}")
    body = (
        "## Simulator (issue 2)\n\n| customers | days | scenario | events | seconds | peak RSS MiB |\n"
        "|---|---|---|---|---|---|\n"
        f"| {args.users:,} | {args.days} | {args.scenario} | {result.n_events:,} | {seconds:.1f} "
        f"| {peak_mib:,.0f} |\n\nTarget: 100,000 customers × 365 days in under 2 minutes on 2 cores."
    )
    write_section("simulate", body, command="python benchmarks/bench_simulate.py "
                  f"--users {args.users} --days {args.days} --scenario {args.scenario}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
