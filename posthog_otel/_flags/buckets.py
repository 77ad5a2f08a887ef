"""Buckets: where a person (or group) falls in a flag's rollout, holdout and variants.

A bucket is ``sha1("<flag key>.<bucketing id><salt>")``'s first 60 bits over 2**60 - 1,
as PostHog computes it. Also the two ways a trace line shows a share or a percentage.
"""

from __future__ import annotations

import hashlib
from typing import Any, Dict

_SCALE = float(0xFFFFFFFFFFFFFFF)


def bucket(key: Any, bucketing_id: Any, salt: str = "", separator: str = ".") -> float:
    """A stable number in [0, 1] for a flag key and a bucketing id."""
    text = f"{key}{separator}{bucketing_id}{salt}"
    share = _buckets.get(text)
    if share is None:
        digest = hashlib.sha1(text.encode("utf-8")).digest()
        share = (int.from_bytes(digest[:8], "big") >> 4) / _SCALE
        if len(_buckets) >= _BUCKETS_KEPT:
            _buckets.clear()  # bounded; the people who come back fill it again
        _buckets[text] = share
    return share


#: Buckets computed lately: the same people read the same flags again and again, and
#: a dictionary look-up costs a tenth of a sha1. At most this many are kept (~1 MB); a
#: larger store costs more in memory churn, for a stream of new people, than it saves.
_BUCKETS_KEPT = 10_000
_buckets: Dict[str, float] = {}


def percent(share: float) -> str:
    return "%.2f%%" % (share * 100)


def number(value: Any) -> str:
    return ("%g" % value) if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)
