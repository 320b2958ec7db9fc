"""Texts of the simulator's composer with their truth, split by phrasing, for tests/voice."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from churnguard.simulate.text import _bank

HELD_SENTENCES = {"7", "8", "9"}  # of the 10 topic sentences per topic, sentiment, language


@dataclass(frozen=True)
class Composed:
    texts: list[str]
    kind: np.ndarray
    topic: np.ndarray
    sentiment: np.ndarray
    written: np.ndarray  # zh, en or mixed, as written
    seen: np.ndarray  # composed only from topic sentences outside HELD_SENTENCES
    unseen: np.ndarray  # composed only from HELD_SENTENCES


@pytest.fixture(scope="session")
def composed() -> Composed:
    texts, _, truth = _bank()
    texts = list(dict.fromkeys(texts))
    cores = [set(truth[t][4].split("+")) for t in texts]
    col = lambda i: np.array([truth[t][i] for t in texts], dtype=object)  # noqa: E731
    return Composed(texts=texts, kind=col(0), topic=col(1), sentiment=col(2), written=col(3),
                    seen=np.array([not c & HELD_SENTENCES for c in cores]),
                    unseen=np.array([c <= HELD_SENTENCES for c in cores]))


@pytest.fixture(scope="session")
def use_vectors(composed):
    """USE vectors of every composed text (about 6,000: seconds)."""
    from churnguard.text.use import encode_use

    return encode_use(composed.texts)


def insert_texts(store, texts, *, ratings=None, types=None, start: int = 0) -> None:
    """Reviews (or ``types``) with ``texts`` and ``ratings`` as events of the store."""
    import pandas as pd

    n = len(texts)
    rows = pd.DataFrame({
        "event_id": [f"t{start + i:06d}" for i in range(n)],
        "user_id": [f"u{i % 40}" for i in range(n)],
        "ts": pd.to_datetime([f"2025-01-{1 + i % 28:02d} 10:00" for i in range(n)]),
        "type": types if types is not None else ["review"] * n,
        "text": texts,
        "rating": ratings if ratings is not None else [None] * n,
        "batch_id": "b1"})
    with store.registered(rows, "texts") as name:
        store.con.execute(f"INSERT INTO events BY NAME SELECT * FROM {name}")
