"""A project is a folder holding churnguard.toml (configuration) and churnguard.duckdb (the store)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churnguard import lending
from churnguard.config import (
    NEW_PROJECT_TOML,
    ConfigError,
    ProjectConfig,
    dump_config,
    load_config,
)
from churnguard.store import STORE_FILENAME, Store

CONFIG_FILENAME = "churnguard.toml"
PROJECT_ENV = "CHURNGUARD_PROJECT"
LOCK_WAIT_ENV = "CHURNGUARD_LOCK_WAIT"
# How long a command waits for another process (a running ingest, say) to release the store:
# long enough to queue behind a routine command, short enough to report a running service soon.
LOCK_WAIT_S = 30.0


def lock_wait_s() -> float:
    """Seconds to wait for a store another process holds: $CHURNGUARD_LOCK_WAIT, else
    :data:`LOCK_WAIT_S`.

    >>> import os; os.environ[LOCK_WAIT_ENV] = "2.5"; lock_wait_s()
    2.5
    >>> del os.environ[LOCK_WAIT_ENV]; lock_wait_s()
    30.0
    """
    text = os.environ.get(LOCK_WAIT_ENV, "").strip()
    if not text:
        return LOCK_WAIT_S
    try:
        seconds = float(text)
    except ValueError:
        raise ConfigError(f"{LOCK_WAIT_ENV}={text!r}: give a number of seconds") from None
    if not 0 <= seconds < float("inf"):
        raise ConfigError(f"{LOCK_WAIT_ENV}={text!r}: give a number of seconds, 0 or more")
    return seconds


def resolve_project_dir(option: str | Path | None) -> Path:
    """--project, else $CHURNGUARD_PROJECT, else the current folder."""
    return Path(option or os.environ.get(PROJECT_ENV) or ".").resolve()


@dataclass(frozen=True, kw_only=True)
class Project:
    root: Path
    config: ProjectConfig

    @property
    def store_path(self) -> Path:
        return self.root / STORE_FILENAME

    @classmethod
    def load(cls, root: Path) -> Project:
        return cls(root=root, config=load_config(root / CONFIG_FILENAME))

    def open_store(self, *, read_only: bool = False) -> Store:
        """The project's store. While `churnguard serve` runs on the project, the store is
        borrowed from it (:mod:`churnguard.lending`) and given back when closed; while another
        process holds it, wait up to ``$CHURNGUARD_LOCK_WAIT`` seconds (default
        :data:`LOCK_WAIT_S`) before saying who holds it
        (:class:`~churnguard.store.StoreBusyError`)."""
        return lending.open_store(self.store_path, read_only=read_only, wait_s=lock_wait_s())

    def holding_store(self) -> contextlib.AbstractContextManager[None]:
        """Keep the store borrowed from a running service for a block that opens the file
        directly, or rewrites it (``erase``); nothing when no service runs."""
        return lending.holding(self.store_path, wait_s=lock_wait_s())

    def simulation_truth(self) -> Any:
        """The simulator's true churn probabilities (user_id, cutoff, p_churn) for the oracle,
        when ``simulation.truth`` in churnguard.toml says where they are; else None."""
        import pandas as pd

        if not self.config.simulation.truth:
            return None
        path = (self.root / self.config.simulation.truth).resolve()
        if not path.exists():
            raise ConfigError(f"simulation.truth in {CONFIG_FILENAME} names {path}, which does "
                              "not exist")
        return pd.read_parquet(path, columns=["user_id", "cutoff", "p_churn"])


def init_project(root: Path, *, config: ProjectConfig | None = None) -> tuple[Project, bool]:
    """Create the folder, churnguard.toml and the store; an existing project is left as it is.

    Returns the project and whether anything was created.
    """
    root.mkdir(parents=True, exist_ok=True)
    config_path = root / CONFIG_FILENAME
    created = not config_path.exists()
    if created:
        text = NEW_PROJECT_TOML if config is None else dump_config(config)
        config_path.write_text(text, encoding="utf-8")
    project = Project.load(root)
    with project.open_store():
        pass
    return project, created
