"""Values a launched study's frozen design determines, cached across requests.

Every trial page needs the answer choices and the reference gallery; once a study is
launched its design cannot change (its hash is in the key), so they are computed once per
cache timeout instead of on every request. A draft is always computed afresh.
"""

from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache

T = TypeVar("T")
CACHE_SECONDS = 300


def cached_for_launched_study(study, name: str, compute: Callable[[], T]) -> T:
    if not study.config_hash:
        return compute()
    return cache.get_or_set(
        f"study-{name}:{study.pk}:{study.config_hash}", compute, timeout=CACHE_SECONDS
    )
