"""``python -m churnguard.cli``, and the file spark-submit runs on a cluster
(``spark-submit .../churnguard/cli/__main__.py score --engine spark ...``, docs/scale.md)."""

from churnguard.cli import main

if __name__ == "__main__":  # not when collected (pytest's doctests import every module)
    raise SystemExit(main())
