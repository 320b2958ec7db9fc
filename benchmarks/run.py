"""Run every benchmark, one after another; each rewrites its section of RESULTS.md.

    python benchmarks/run.py            (what `make bench` runs)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["bench_simulate.py", "bench_ingest.py", "bench_features.py", "bench_models.py",
              "bench_allocate.py", "bench_recommend.py", "bench_plan.py"]


def main() -> int:
    failed = []
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, str(HERE / name)]).returncode != 0:
            failed.append(name)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
