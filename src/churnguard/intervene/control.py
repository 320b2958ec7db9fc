"""Random control groups that a rerun reproduces.

Every customer gets a uniform number from a keyed hash, HMAC-SHA256(key, campaign_id + user_id),
so the same key and campaign id always draw the same control group, and nobody without the key
can predict (or game) who is held out. Within each stratum (risk tier x planned action) the
customers with the smallest numbers form the control group, round(share x size) of them, so
every tier and action is held out in the same proportion and each action's effect can be
measured against customers who were planned the same action but did not get it.

>>> frame = pd.DataFrame({"user_id": [f"u{i}" for i in range(1000)],
...                       "stratum": ["high"] * 300 + ["low"] * 700})
>>> control = control_mask(frame["user_id"], frame["stratum"], campaign_id="c1", share=0.1,
...                        key=b"k")
>>> int(control[:300].sum()), int(control[300:].sum())
(30, 70)
>>> bool((control == control_mask(frame["user_id"], frame["stratum"], campaign_id="c1",
...                               share=0.1, key=b"k")).all())
True
"""

from __future__ import annotations

import hashlib
import hmac
import os

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_CONTROL_KEY", "control_key", "control_mask", "hash_uniform"]

# Not a secret: without a configured key the draw is still random and reproducible.
DEFAULT_CONTROL_KEY = b"churnguard-control-groups"


def control_key(env_name: str) -> bytes:
    value = os.environ.get(env_name, "")
    return value.encode("utf-8") if value else DEFAULT_CONTROL_KEY


def hash_uniform(user_ids: pd.Series, *, campaign_id: str, key: bytes) -> np.ndarray:
    """A uniform number in [0, 1) per customer from HMAC-SHA256(key, campaign_id + user_id)."""
    prefix = hmac.new(key, digestmod=hashlib.sha256)
    prefix.update(campaign_id.encode("utf-8") + b"\x00")
    out = np.empty(len(user_ids))
    for i, user in enumerate(user_ids.astype(str)):
        h = prefix.copy()
        h.update(user.encode("utf-8"))
        out[i] = int.from_bytes(h.digest()[:8], "big") / 2.0**64
    return out


def control_mask(user_ids: pd.Series, strata: pd.Series, *, campaign_id: str, share: float,
                 key: bytes) -> np.ndarray:
    """True for the control customers: the round(share x n) smallest hash numbers per stratum."""
    if not 0 <= share < 1:
        raise ValueError(f"the control share must be in [0, 1), got {share}")
    u = hash_uniform(pd.Series(user_ids).reset_index(drop=True), campaign_id=campaign_id, key=key)
    frame = pd.DataFrame({"stratum": pd.Series(strata).astype(str).to_numpy(), "u": u})
    rank = frame.groupby("stratum")["u"].rank(method="first").to_numpy()
    size = frame.groupby("stratum")["u"].transform("size").to_numpy()
    return rank <= np.round(share * size)
