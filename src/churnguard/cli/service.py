"""The ``serve`` command: the REST service (and dashboard) over a project.

Registered on the ``churnguard`` group when the package loads; a thin shell over ``churnguard.service``.
"""

from __future__ import annotations

from pathlib import Path

import click

from churnguard.cli.base import cli, load_project, project_option


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Interface to listen on (127.0.0.1: this machine only).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@project_option
def serve(host: str, port: int, project_dir: Path | None) -> None:
    """Serve the project over HTTP: the REST API under /v1 (OpenAPI at /openapi.json).

    API keys and roles come from the environment (CHURNGUARD_API_KEYS="key:admin,key2:read");
    outside development (CHURNGUARD_ENV) the service refuses to start without real keys.
    docs/service.md lists the endpoints, roles, limits and error codes.
    """
    from churnguard.service import run

    project = load_project(project_dir)
    run(project.root, host=host, port=port)
