"""``python -m churnguard.service [--project DIR] [--host H] [--port P]``: serve a project.

Settings come from CHURNGUARD_* environment variables (docs/service.md); unsafe ones stop it
before it listens, with exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from churnguard.config import ConfigError
from churnguard.project import resolve_project_dir
from churnguard.service.app import run
from churnguard.service.settings import SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m churnguard.service",
                                     description="Serve a churnguard project over HTTP.")
    parser.add_argument("--project", default=None,
                        help="project folder (default: $CHURNGUARD_PROJECT or the current one)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    try:
        run(resolve_project_dir(args.project), host=args.host, port=args.port,
            log_level=args.log_level)
    except (SettingsError, ConfigError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
