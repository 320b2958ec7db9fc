"""Control groups: the key and the campaign id decide who is held out, and nothing else does.

A hash that ignored either would hold out the same customers in every campaign (or let anyone
without the key predict them); one that depended on the process (Python's salted ``hash``, a
random seed) would draw a different group on a rerun. Each check below is shown to fail on such a
broken hash (the parametrised "the test can fail" cases).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnguard.intervene import control
from churnguard.intervene.control import control_mask

USERS = pd.Series([f"u{i:05d}" for i in range(2000)])
# Three strata of unequal sizes, as risk tier x action makes them.
STRATA = pd.Series(["high|coupon_10"] * 300 + ["medium|cs_outreach"] * 700 + ["low|none"] * 1000)
SHARE = 0.1
KEY, OTHER_KEY = b"key-one", b"key-two"
CAMPAIGN, OTHER_CAMPAIGN = "spring-2026", "summer-2026"


def held_out(*, campaign_id: str, key: bytes) -> frozenset[str]:
    mask = control_mask(USERS, STRATA, campaign_id=campaign_id, share=SHARE, key=key)
    return frozenset(USERS[mask])


def sizes(group: frozenset[str]) -> dict[str, int]:
    by_user = dict(zip(USERS, STRATA, strict=True))
    return pd.Series([by_user[u] for u in group]).value_counts().to_dict()


def check_key_and_campaign_decide_the_group() -> None:
    base = held_out(campaign_id=CAMPAIGN, key=KEY)
    assert sizes(base) == {"high|coupon_10": 30, "medium|cs_outreach": 70, "low|none": 100}
    for what, other in (("another key", held_out(campaign_id=CAMPAIGN, key=OTHER_KEY)),
                        ("another campaign", held_out(campaign_id=OTHER_CAMPAIGN, key=KEY))):
        # The same size in every stratum ...
        assert sizes(other) == sizes(base), what
        # ... but other customers: two independent 10% draws share about 10% of their members
        # (20 of 200 expected; the same group would share all 200).
        shared = len(base & other)
        assert shared < 60, f"{what} holds out {shared} of the same 200 customers"
    # The same pair draws the same group again.
    assert held_out(campaign_id=CAMPAIGN, key=KEY) == base


# Broken hashes, each as a drop-in for control.hash_uniform.
_real_hash_uniform = control.hash_uniform


def _ignores_key(user_ids: pd.Series, *, campaign_id: str, key: bytes) -> np.ndarray:
    return _real_hash_uniform(user_ids, campaign_id=campaign_id, key=b"fixed")


def _ignores_campaign(user_ids: pd.Series, *, campaign_id: str, key: bytes) -> np.ndarray:
    return _real_hash_uniform(user_ids, campaign_id="fixed", key=key)


def _ignores_both(user_ids: pd.Series, *, campaign_id: str, key: bytes) -> np.ndarray:
    return _real_hash_uniform(user_ids, campaign_id="fixed", key=b"fixed")


def test_a_different_key_or_campaign_draws_a_different_group_of_the_same_size() -> None:
    check_key_and_campaign_decide_the_group()


@pytest.mark.parametrize("broken", [_ignores_key, _ignores_campaign, _ignores_both],
                         ids=["ignores-key", "ignores-campaign", "ignores-both"])
def test_the_check_fails_on_a_hash_that_ignores_the_key_or_the_campaign(
        broken: Callable[..., np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(control, "hash_uniform", broken)
    with pytest.raises(AssertionError):
        check_key_and_campaign_decide_the_group()


# A separate process (another PYTHONHASHSEED) draws the group and prints it as JSON. With
# ``salted`` the hash is broken on purpose: it mixes in Python's per-process string hash.
_DRAW = """
import json, sys
import numpy as np, pandas as pd
from churnguard.intervene import control
if sys.argv[1] == "salted":
    real = control.hash_uniform
    def salted(user_ids, *, campaign_id, key):
        salt = (hash(campaign_id) % 1000) / 1000.0
        return (real(user_ids, campaign_id=campaign_id, key=key) + salt) % 1.0
    control.hash_uniform = salted
users = pd.Series([f"u{i:05d}" for i in range(2000)])
strata = pd.Series(["high|coupon_10"] * 300 + ["medium|cs_outreach"] * 700 + ["low|none"] * 1000)
mask = control.control_mask(users, strata, campaign_id="spring-2026", share=0.1, key=b"key-one")
print(json.dumps(sorted(users[mask])))
"""


def draw_in_processes(variant: str) -> list[frozenset[str]]:
    src = str(Path(control.__file__).resolve().parents[2])
    groups = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed,
               "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run([sys.executable, "-c", _DRAW, variant], env=env,
                              capture_output=True, text=True, timeout=300, check=True)
        groups.append(frozenset(json.loads(proc.stdout)))
    return groups


def check_same_group_across_processes(variant: str) -> frozenset[str]:
    first, second = draw_in_processes(variant)
    assert len(first) == 200
    assert first == second, "another process drew another control group"
    return first


def test_the_same_key_and_campaign_draw_the_same_group_in_another_process() -> None:
    drawn = check_same_group_across_processes("real")
    # ... and it is the group this process draws.
    assert drawn == held_out(campaign_id=CAMPAIGN, key=KEY)


def test_the_process_check_fails_on_a_hash_salted_per_process() -> None:
    with pytest.raises(AssertionError, match="another process"):
        check_same_group_across_processes("salted")
