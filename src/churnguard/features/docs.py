"""The feature registry rendered as the Markdown table in docs/features.md.

>>> print(features_markdown().splitlines()[0])
| feature | group | unit | description | needs |
"""

from __future__ import annotations

from churnguard.features.registry import ATTRIBUTE_PREFIX, FEATURES, GROUPS


def _needs(requires: tuple[str, ...]) -> str:
    return ", ".join("events with a session_id" if r == "@session_id" else f"`{r}` events"
                     for r in requires) or "—"


def features_markdown() -> str:
    """One row per registered feature, grouped in registry order, plus the attribute columns."""
    lines = ["| feature | group | unit | description | needs |", "|---|---|---|---|---|"]
    for group in GROUPS:
        for spec in FEATURES.values():
            if spec.group == group:
                lines.append(f"| `{spec.name}` | {group} | {spec.unit} | {spec.description} | "
                             f"{_needs(spec.requires)} |")
    lines.append(f"| `{ATTRIBUTE_PREFIX}<name>` | attributes | value | one column per user "
                 "attribute: numeric when every value parses as a number, else categorical | "
                 "user attributes |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m churnguard.features.docs > table.md
    print(features_markdown(), end="")
