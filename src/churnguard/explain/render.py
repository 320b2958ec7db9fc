"""Formatting the values and filling the templates, vectorised over the rows that show a
sentence.

>>> _money(12.5), _money(40.0), _percent(0.004), _number(2.5)
('12.50', '40', '<1%', '2.5')
"""

from __future__ import annotations

import string

import numpy as np

from churnguard.explain.templates import TEMPLATES
from churnguard.explain.themes import _DAY, _Field, _Theme, _Variant
from churnguard.explain.topics import TOPIC_WORDS
from churnguard.explain.values import _Values


def _whole(values: np.ndarray, *, floor: bool) -> np.ndarray:
    values = values.astype(float)
    return (np.floor(values) if floor else np.floor(values + 0.5)).astype(np.int64)


def _money(x: float) -> str:
    cents = round(x * 100)
    return f"{cents / 100:,.0f}" if cents % 100 == 0 else f"{cents / 100:,.2f}"


def _number(x: object) -> str:
    if isinstance(x, float | int | np.floating | np.integer):
        return f"{x:,.2f}".rstrip("0").rstrip(".") if x != round(x) else f"{round(x):,}"
    return str(x)


def _percent(share: float) -> str:
    pct = share * 100
    if 0 < pct < 0.5:
        return "<1%"
    if 99.5 <= pct < 100:
        return ">99%"
    return f"{int(np.floor(pct + 0.5))}%"


# an elapsed time under one day, in place of "{days}" ("... ago", "...天前")
_LESS_THAN_A_DAY = {"en": "less than a day", "zh": "不到1"}


def _format(spec: _Field, values: np.ndarray, lang: str) -> list[str]:
    """Strings for one field over a subset of rows; numbers get their English noun."""
    kind = spec.kind
    if kind == "value":  # an attribute: a category or a number
        kind = "number" if values.dtype.kind == "f" else "text"
    if kind in ("days", "count", "int"):
        numbers = _whole(values, floor=kind == "days").tolist()
        texts = [str(k) for k in numbers]
        if spec.noun is not None and lang == "en":
            one, many = spec.noun
            texts = [f"{k} {one if k == 1 else many}" for k in numbers]
        if kind == "days" and spec.noun == _DAY:  # "0 days ago" reads as a mistake
            less = _LESS_THAN_A_DAY[lang]
            texts = [less if k == 0 else text for k, text in zip(numbers, texts)]
        return texts
    if kind == "money":
        return [_money(x) for x in values.astype(float).tolist()]
    if kind == "pct":
        return [_percent(x) for x in values.astype(float).tolist()]
    if kind == "stars":
        return [f"{x:.1f}" for x in values.astype(float).tolist()]
    if kind == "date":
        return np.datetime_as_string(values.astype("datetime64[D]"), unit="D").tolist()
    if kind == "topic":
        words = TOPIC_WORDS[lang]
        return [words.get(t, str(t)) for t in values.tolist()]
    if kind == "number":
        return [_number(x) for x in values.tolist()]
    return [str(x) for x in values.tolist()]


def _positional(template: str) -> tuple[str, list[str]]:
    """'{a} and {b}' -> ('{0} and {1}', ['a', 'b']): formatting by position is faster per row."""
    names: list[str] = []
    out = []
    for literal, name, spec, conv in string.Formatter().parse(template):
        out.append(literal.replace("{", "{{").replace("}", "}}"))
        if name is not None:
            if name not in names:
                names.append(name)
            out.append("{" + str(names.index(name)) + (f"!{conv}" if conv else "")
                       + (f":{spec}" if spec else "") + "}")
    return "".join(out), names


def _render(theme: _Theme, variant: _Variant, lang: str, values: _Values,
            rows: np.ndarray) -> list[str]:
    template = TEMPLATES[theme.key][variant.template or variant.name][lang]
    strings = {name: _format(spec, values.resolve(spec.source)[rows], lang)
               for name, spec in variant.fields.items()}
    if isinstance(template, dict):
        count = _whole(values.resolve(variant.fields[variant.plural].source)[rows], floor=False)
        forms = np.where(count == 1, "one", "other")
    else:
        forms = None
    out: list[str] = [""] * len(rows)
    for form in ("one", "other") if forms is not None else (None,):
        text = template if form is None else template[form]  # type: ignore[index]
        picked = np.arange(len(rows)) if form is None else np.flatnonzero(forms == form)
        fmt, names = _positional(text)
        columns = [[strings[name][i] for i in picked.tolist()] for name in names]
        sentences = [fmt.format(*vals) for vals in zip(*columns)] if names else \
            [fmt.format()] * len(picked)
        for i, sentence in zip(picked.tolist(), sentences):
            out[i] = sentence
    return out
