"""The reason sentences, as data: :data:`TEMPLATES` is read from ``templates.toml`` beside this
module, ``TEMPLATES[theme][variant][lang]``: a str.format template, or ``{"one": ..., "other":
...}`` chosen by the variant's ``plural`` field. In English a field with a noun renders with it
("74 days", "1 order"); in Chinese numbers render bare and the template carries the measure word.

>>> TEMPLATES["overdue"]["last_order"]["en"]
'Last order {days} ago'
>>> sorted(TEMPLATES["open_tickets"]["open"]["en"])
['one', 'other']
"""

from __future__ import annotations

import tomllib
from importlib import resources

LANGS = ("en", "zh")

Template = str | dict[str, str]
TEMPLATES: dict[str, dict[str, dict[str, Template]]] = tomllib.loads(
    resources.files(__package__).joinpath("templates.toml").read_text(encoding="utf-8")
)
