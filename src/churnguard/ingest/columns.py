"""Column planning: which file column feeds each contract column (by name, or by --map), which
extra columns become attributes (users, items), and what to say about missing ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from churnguard.ingest.read import _Source
from churnguard.ingest.results import IngestError, Problem, _problem_error
from churnguard.schema import Contract


@dataclass
class _Plan:
    """How the contract columns are read from one source."""

    sources: dict[str, str]  # contract column -> file column
    attributes: dict[str, str]  # attribute name -> file column (users, items)
    ignored: list[str]
    notes: list[str]


def _plan_columns(
    contract: Contract,
    source: _Source,
    mapping: Mapping[str, str],
    default_type: str | None,
    delimiter: str | None,
) -> _Plan:
    found = list(source.columns)
    by_lower: dict[str, str] = {}
    for name in found:
        by_lower.setdefault(name.strip().lower(), name)
    sources: dict[str, str] = {}
    attributes: dict[str, str] = {}
    notes: list[str] = []

    for dst, src in mapping.items():
        actual = src if src in source.columns else by_lower.get(src.strip().lower())
        if actual is None:
            raise _problem_error(
                Problem(
                    source.display,
                    None,
                    src,
                    f"--map {dst}={src}: the file has no column {src!r}; "
                    f"its columns are {_list_names(found)}",
                )
            )
        if dst in contract.names:
            sources[dst] = actual
        else:
            attributes[dst] = actual
    mapped_from = set(sources.values()) | set(attributes.values())
    for column in contract.columns:
        if column.name in sources:
            continue
        actual = by_lower.get(column.name)
        if actual is not None and actual not in mapped_from:
            sources[column.name] = actual

    missing = [
        c
        for c in contract.required
        if c not in sources and not (c == "type" and default_type is not None)
    ]
    if missing:
        raise _missing_columns(contract, source, missing, found, delimiter)

    used = set(sources.values()) | set(attributes.values())
    extras = [name for name in found if name not in used]
    ignored: list[str] = []
    if contract.attributes_table is not None:
        for name in extras:
            if name.strip().lower() in contract.names:
                ignored.append(name)  # a contract column replaced by --map
            else:
                attributes[name.strip()] = name
    else:
        ignored = extras
    if ignored:
        notes.append(
            f"{source.display}: ignored column(s) not in the {contract.kind} contract: "
            f"{_list_names(ignored)}"
        )
    if default_type is not None and "type" in sources:
        notes.append(
            f"{source.display}: has a type column; --default-type {default_type} only fills "
            "rows whose type is empty"
        )
    return _Plan(sources=sources, attributes=attributes, ignored=ignored, notes=notes)


def _list_names(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names) if names else "(none)"


def _missing_columns(
    contract: Contract,
    source: _Source,
    missing: list[str],
    found: list[str],
    delimiter: str | None,
) -> IngestError:
    noun = "column" if len(missing) == 1 else "columns"
    message = (
        f"{source.display}: missing required {noun} {_list_names(missing)} for {contract.kind}; "
        f"columns found: {_list_names(found)}."
    )
    hint = None
    if source.fmt == "csv" and len(found) == 1:
        for candidate in (",", ";", "\t", "|"):
            if candidate != delimiter and candidate in found[0]:
                shown = "\\t" if candidate == "\t" else candidate
                given = "" if delimiter is None else f", not {delimiter!r}"
                hint = (
                    f" The header looks {shown!r}-separated{given}: pass delimiter {shown!r} "
                    "(or leave the delimiter out so it is detected)."
                )
                break
    if hint:
        message += hint
    else:
        example = missing[0]
        message += (
            f" If the file names it differently, map it: --map {example}=<file column>"
            + (" (or --default-type T for a file of one event type)" if "type" in missing else "")
            + "."
        )
    return IngestError(message, [Problem(source.display, None, m, "missing column") for m in missing])
