"""The agents' assistant on the simulated shop: hit@3 of retrieval per language and per encoder,
and the abstain thresholds chosen from data (issue 20, item 5; docs/assistant.md).

Two sets of held-out tickets, both written by the simulator's composer:

* **shop**: the shop's own tickets. The retrieval base is every ticket resolved (with its reply)
  that opened before the split day (70% of the window); the queries are the tickets opened from
  that day on. The shop's tickets come from late or defective orders, so they are about two
  topics only (delivery, quality): the chance level is high and printed beside.
* **four topics**: ticket texts of all four topics (delivery, quality, price, service) in both
  languages, as the composer writes them (256 variants each). Split ``texts``: 70% of the
  distinct texts at random form the base, the rest are the queries. Split ``phrasings``: 3 of
  the 10 topic sentences of every topic and language are held out; the queries are the texts
  written only from them, the base those written from none of them (unseen sentences).

hit@3: one of the three most similar resolved tickets has the query's true topic. Each route
(``en``, ``zh``: a text goes by its majority script) is measured through both retrieval
encoders on the same splits (``[assistant] encoder_en`` / ``encoder_zh``): ``use``, the
multilingual Universal Sentence Encoder, and ``bilingual``, MiniLM for English and the shop's
character n-gram encoder for Chinese (fitted on the store's review and ticket texts, as
``shop_text_encoder`` does). The better of a route, by the rule printed with the table: the
higher hit@3 on held-out phrasings (min over the splits), the hardest set; ties by held-out
texts, then the shop set.

The abstain threshold of each route and encoder: the one the product picks from the store's
resolved tickets (leave-one-out, 95% answered), and the fixed fallback for routes with too few
resolved tickets (the 5th percentile of the held-out shop tickets' best similarity, rounded
down to 0.05); for both, the share of held-out tickets answered and of texts that are no
complaint at all turned away.

    python benchmarks/bench_assistant.py --users 5000 --days 365 --seed 0
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import churnguard  # noqa: E402, F401  (before torch: OMP_WAIT_POLICY)
from results import DATA, cached_shop, write_section  # noqa: E402

SPLIT_SHARE = 0.7
SPLITS = 3
K = 3
ROUTES = ("en", "zh")
ENCODERS = ("use", "bilingual")


class _Once:
    """An encoder that encodes each distinct text once over the whole benchmark (the same
    texts are bases and queries of several splits)."""

    def __init__(self, encoder) -> None:
        self.encoder, self.key, self.use = encoder, encoder.key, encoder.use
        self._seen: dict[str, object] = {}

    def encode(self, texts):  # -> np.ndarray
        import numpy as np

        new = sorted({t for t in texts if t not in self._seen})
        if new:
            self._seen.update(zip(new, self.encoder.encode(new)))
        return np.stack([self._seen[t] for t in texts]) if texts else self.encoder.encode([])


def _hit(index, queries, topics_of, k: int = K):  # -> list[tuple[str, bool, float]]
    """Per query (text, true topic): (route, hit@k, best similarity)."""
    from churnguard.assistant import route_of

    out = []
    for text, topic in queries:
        found = index.similar(text, k=k)
        out.append((route_of(text), any(topics_of[m.ticket.ticket_id] == topic for m in found),
                    found[0].similarity if found else float("nan")))
    return out


def _chance(base_topics, query_topics, k: int = K) -> float:
    """hit@k of k base tickets drawn at random (with replacement): 1 - sum_t q_t (1 - b_t)^k."""
    import collections

    b, q = collections.Counter(base_topics), collections.Counter(query_topics)
    nb, nq = sum(b.values()), sum(q.values())
    return 1.0 - sum(n / nq * (1.0 - b[t] / nb) ** k for t, n in q.items())


def shop_set(store, sim: Path, encoder):  # -> (rows, chance per route, index, n_base, n_q)
    import pandas as pd

    from churnguard.assistant import resolved_tickets, route_of
    from churnguard.assistant.retrieval import TicketIndex

    truth = pd.read_parquet(sim / "truth" / "tickets.parquet")
    topic_of = dict(zip(truth["event_id"], truth["topic"]))
    split = truth["ts"].min() + SPLIT_SHARE * (truth["ts"].max() - truth["ts"].min())
    base = [t for t in resolved_tickets(store)
            if pd.Timestamp(t.opened_at, tz="UTC") < split]
    queries = truth[truth["ts"] >= split]
    events = pd.read_parquet(sim / "events.parquet", columns=["event_id", "text"])
    queries = queries.merge(events, on="event_id")
    index = TicketIndex(base, dict.fromkeys(ROUTES, encoder))
    rows = _hit(index, list(zip(queries["text"], queries["topic"])), topic_of)
    chance = {}
    for route in ROUTES:
        mine = [t for t in base if route_of(t.text) == route]
        qs = [tp for (tx, tp) in zip(queries["text"], queries["topic"]) if route_of(tx) == route]
        chance[route] = _chance([topic_of[t.ticket_id] for t in mine], qs) if qs else math.nan
    return rows, chance, index, len(base), len(queries)


def composed_set(encoder, split: int):  # -> dict[str, rows]
    import numpy as np

    from churnguard.assistant import ResolvedTicket
    from churnguard.assistant.retrieval import TicketIndex
    from churnguard.simulate.text import _bank, compose_reply

    texts, index, truth = _bank()
    rows = [(texts[i], truth[texts[i]]) for key, ids in index.items() if key[0] == "ticket"
            for i in ids.tolist()]
    rng = np.random.default_rng(split)
    held = {str(c) for c in rng.choice(10, size=3, replace=False)}
    train = rng.random(len(rows)) < SPLIT_SHARE
    out = {}
    for mode in ("texts", "phrasings"):
        if mode == "texts":
            in_base, in_query = train, ~train
        else:
            cores = [t[4].split("+") for _, t in rows]
            in_base = np.array([not any(c in held for c in cs) for cs in cores])
            in_query = np.array([all(c in held for c in cs) for cs in cores])
        base = [ResolvedTicket(ticket_id=f"c{j}", user_id="u", opened_at=None, text=rows[j][0],
                               resolved_at=None, reply=compose_reply(
                                   topic=0, zh=False, variant=0))
                for j in np.flatnonzero(in_base)]
        topic_of = {f"c{j}": rows[j][1][1] for j in np.flatnonzero(in_base)}
        queries = [(rows[j][0], rows[j][1][1]) for j in np.flatnonzero(in_query)]
        out[mode] = _hit(TicketIndex(base, dict.fromkeys(ROUTES, encoder)), queries, topic_of)
    return out


def not_complaints():  # -> list[str]
    """Texts about nothing a ticket is about: positive reviews, off-topic remarks, searches."""
    from churnguard.simulate.text import _PARTS, template_table

    texts, index = template_table()
    out = [texts[i] for key, ids in index.items() if key[0] == "review" and key[2]
           for i in ids.tolist()[:40]]
    out += [texts[i] for key, ids in index.items() if key[0] == "search" for i in ids.tolist()]
    out += _PARTS["en"]["parts"]["noise"] + _PARTS["zh"]["parts"]["noise"]
    return out


def _rate(rows, route: str) -> tuple[float, int]:
    hits = [h for r, h, _ in rows if r == route]
    return (sum(hits) / len(hits) if hits else math.nan), len(hits)


def _better(hits: dict, route: str) -> str:
    """The encoder with the higher hit@3 on held-out phrasings (min over splits), ties by
    held-out texts, then by the shop set; still tied: ``use`` (nothing to fit)."""
    return max(ENCODERS, key=lambda e: (round(hits[(e, "phrasings", route)], 3),
                                        round(hits[(e, "texts", route)], 3),
                                        round(hits[(e, "shop", route)], 3), e == "use"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print, do not write RESULTS.md")
    args = parser.parse_args()
    import numpy as np

    from churnguard.assistant import route_of
    from churnguard.assistant.retrieval import route_encoders
    from churnguard.store import Store

    shop = cached_shop(DATA / f"assistant_{args.users}_{args.days}_{args.seed}",
                       users=args.users, days=args.days, seed=args.seed)
    others = not_complaints()
    hits, means, counts, shop_rows, indexes, other_best = {}, {}, {}, {}, {}, {}
    with Store.open(shop.db) as store:
        for name in ENCODERS:
            encoder = _Once(route_encoders(store, dict.fromkeys(ROUTES, name))["zh"])
            rows, chance, index, n_base, n_queries = shop_set(store, sim=shop.sim,
                                                              encoder=encoder)
            composed = [composed_set(encoder, split) for split in range(SPLITS)]
            shop_rows[name], indexes[name] = rows, index
            other_best[name] = [(route_of(t), index.similar(t, k=1)) for t in others]
            for route in ROUTES:
                hits[(name, "shop", route)], counts["shop", route] = _rate(rows, route)
                for mode in ("texts", "phrasings"):
                    per_split = [_rate(c[mode], route)[0] for c in composed]
                    hits[(name, mode, route)] = min(per_split)
                    means[(name, mode, route)] = sum(per_split) / len(per_split)
                    counts[mode, route] = _rate(composed[0][mode], route)[1]
            print(f"{name} done", flush=True)
    lines = ["Retrieval of similar resolved tickets (hit@3: one of the 3 most similar has the "
             "query's true topic), per language route (a text goes by its majority script) and "
             "per retrieval encoder on the same splits: **use** (multilingual Universal "
             "Sentence Encoder) and **bilingual** (MiniLM for en, the shop's character n-gram "
             "encoder for zh; the assistant's encoder before).", "",
             f"Shop set: {n_base} resolved tickets with replies opened before the split day, "
             f"{n_queries} tickets opened after it as queries (2 topics: chance is high).", "",
             "| set | encoder | en hit@3 | zh hit@3 | queries en / zh | chance en / zh |",
             "|---|---|---|---|---|---|"]
    labels = {"shop": "shop, later tickets",
              "texts": f"four topics, held-out texts ({SPLITS} splits: min (mean))",
              "phrasings": f"four topics, held-out phrasings ({SPLITS} splits: min (mean))"}
    for mode in ("shop", "texts", "phrasings"):
        for name in ENCODERS:
            ch = (f"{chance['en']:.3f} / {chance['zh']:.3f}" if mode == "shop"
                  else "0.578 / 0.578")
            cell = {r: f"{hits[(name, mode, r)]:.3f}" + (
                "" if mode == "shop" else f" ({means[(name, mode, r)]:.3f})") for r in ROUTES}
            lines.append(f"| {labels[mode]} | {name} | {cell['en']} | "
                         f"{cell['zh']} | {counts[mode, 'en']} / "
                         f"{counts[mode, 'zh']} | {ch} |")
    better = {route: _better(hits, route) for route in ROUTES}
    lines += ["", "The better encoder per route (higher hit@3 on held-out phrasings, min over the "
              "splits; ties by held-out texts, then the shop set): "
              + ", ".join(f"{route} **{better[route]}**" for route in ROUTES) + ".", ""]
    lines += ["Abstain thresholds per route and encoder. *Store*: what the product chooses from "
              "the base itself (the similarity 95% of the resolved tickets reach to their most "
              "similar other one, `TicketIndex.threshold`). *Fallback*: the 5th percentile of "
              "the best similarity of the held-out shop tickets, rounded down to 0.05, used when "
              "a route has fewer than 20 resolved tickets. For each: the share of held-out "
              "tickets answered and of texts that are no complaint at all (positive reviews, "
              "off-topic remarks, searches) turned away.", "",
              "| route | encoder | best similarity of held-out tickets: p5 / median | threshold "
              "| held-out tickets answered | non-complaints turned away |",
              "|---|---|---|---|---|---|"]
    for route in ROUTES:
        for name in ENCODERS:
            best = np.array([s for r, _, s in shop_rows[name] if r == route])
            p5 = float(np.percentile(best, 5))
            other = np.array([m[0].similarity for r, m in other_best[name] if r == route and m])
            for kind, threshold in (("store", indexes[name].threshold(route, 0.95)),
                                    ("fallback", math.floor(p5 * 20) / 20)):
                lines.append(f"| {route} | {name} | {p5:.3f} / {float(np.median(best)):.3f} | "
                             f"{kind} {threshold:.3f} | {float(np.mean(best >= threshold)):.3f} "
                             f"| {float(np.mean(other < threshold)):.3f} (of {other.size}) |")
    body = "\n".join(lines)
    print(body)
    if not args.no_write:
        write_section("assistant", body, command="python benchmarks/bench_assistant.py "
                      f"--users {args.users} --days {args.days} --seed {args.seed}")


if __name__ == "__main__":
    main()
