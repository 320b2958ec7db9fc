"""Reason codes: the top reasons a customer may churn, as sentences in English or Chinese.

A model explains each (user_id, cutoff) row with SHAP contributions in log-odds, one column per
feature. Features that say the same thing to a marketer are grouped into a *theme* (the days since
the last order, the usual gap between orders and the overdue ratio all say "overdue"); a theme's
weight is the sum of its features' **positive** contributions (only what pushes toward churn is a
reason), themes are ranked by weight, and the top ``top_k`` become sentences that quote the
customer's own values. Within a theme the sentence is the best-supported *variant*: among the
variants whose values are known for the customer (a variant never prints a missing value), the one
whose own features contributed most; a theme with no such variant (e.g. "returns" for a customer
with none) is not a reason for that customer.

A reason never quotes a model quantity: the BTYD outputs (``btyd_*``) count toward "overdue" and
are said as the customer's own order rhythm ("Usually orders every 24 days; it has been 61 days
since the last order", key ``purchase_rhythm``); user attributes (``attr_*``) and embeddings are
never reasons.

Templates are data (:data:`TEMPLATES`, read from ``templates.toml``); :func:`reason_context` adds
details the features do not hold (the date, rating and topic of the last review, ...) so that
sentences can name them.

The package, by concern: ``templates`` (the sentences), ``topics`` (review topics), ``themes``
(features to themes, each theme's variants), ``values`` and ``render`` (the quoted values and the
filled templates), ``reasons`` (choosing and ranking), ``queries`` (context from the store).

>>> import pandas as pd
>>> idx = pd.MultiIndex.from_tuples([("u1", pd.Timestamp("2026-11-01"))],
...                                 names=["user_id", "cutoff"])
>>> features = pd.DataFrame({"days_since_last_order": [74.2], "order_gap_mean_days": [21.0],
...                          "tickets_unresolved": [2], "oldest_unresolved_ticket_days": [35.5]},
...                         index=idx)
>>> shap = pd.DataFrame({"days_since_last_order": [0.9], "order_gap_mean_days": [0.2],
...                      "tickets_unresolved": [0.4], "oldest_unresolved_ticket_days": [-0.1],
...                      "bias": [-1.0]}, index=idx)
>>> out = reasons(shap, features, top_k=2)
>>> for sentence in out.iloc[0][["reason_1", "reason_2"]]:
...     print(sentence)
Last order 74 days ago; usually orders every 21 days
2 support tickets unresolved (oldest open 35 days)
>>> reasons(shap, features, lang="zh", top_k=1)["reason_1"].iloc[0]
'最近一次下单在74天前，平时约每21天下单一次'
"""

from churnguard.explain.queries import CONTEXT_COLUMNS, reason_context
from churnguard.explain.reasons import reasons, reasons_in
from churnguard.explain.templates import LANGS, TEMPLATES
from churnguard.explain.themes import theme_of
from churnguard.explain.topics import TOPIC_KEYWORDS

__all__ = ["CONTEXT_COLUMNS", "LANGS", "TEMPLATES", "TOPIC_KEYWORDS", "reason_context", "reasons",
           "reasons_in", "theme_of"]
