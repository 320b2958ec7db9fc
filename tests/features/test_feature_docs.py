"""docs/features.md documents every registered feature, with the table the registry renders."""

from __future__ import annotations

from pathlib import Path

from churnguard.features import FEATURES, features_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "features.md"


def test_docs_name_every_feature():
    text = DOC.read_text(encoding="utf-8")
    missing = [name for name in FEATURES if f"`{name}`" not in text]
    assert not missing, f"docs/features.md lacks {missing}; regenerate the table"


def test_docs_table_is_the_rendered_registry():
    assert features_markdown() in DOC.read_text(encoding="utf-8"), (
        "docs/features.md is out of date: paste churnguard.features.features_markdown() "
        "under '## Features'")


def test_markdown_has_one_row_per_feature():
    rows = [line for line in features_markdown().splitlines() if line.startswith("| `")]
    assert len(rows) == len(FEATURES) + 1  # plus the attr_<name> row
