"""The agent token cache: expiry, forget-by-station, and no stale token cached after a
revocation that raced with its database read."""

from __future__ import annotations

from garrison.server.stations.credentials import TokenCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_for_the_ttl() -> None:
    clock = Clock()
    cache = TokenCache(10.0, clock)
    cache.put("d1", 1, "U1")
    hit = cache.get("d1")
    assert hit is not None
    assert (hit.station_id, hit.uuid) == (1, "U1")
    clock.now += 10.0
    assert cache.get("d1") is not None
    clock.now += 0.001
    assert cache.get("d1") is None


def test_expired_entries_are_dropped_as_new_ones_come() -> None:
    clock = Clock()
    cache = TokenCache(10.0, clock)
    for n in range(1000):
        cache.put(f"old{n}", n, "U")
    clock.now += 11.0
    cache.put("new", 5000, "U")
    assert len(cache) == 1
    # The index went with them: forgetting an expired station finds nothing to drop.
    cache.forget(range(1000))
    assert cache.get("new") is not None


def test_a_put_again_renews_the_entry_and_keeps_expiry_order() -> None:
    clock = Clock()
    cache = TokenCache(10.0, clock)
    cache.put("a", 1, "U1")
    clock.now += 5.0
    cache.put("b", 2, "U2")
    cache.put("a", 1, "U1")  # renewed: now expires after b
    clock.now += 6.0
    cache.put("c", 3, "U3")  # drops what expired from the front: nothing, a was renewed
    assert cache.get("a") is not None
    assert cache.get("b") is not None
    clock.now += 5.0
    cache.put("d", 4, "U4")
    assert cache.get("b") is None
    assert cache.get("a") is None
    assert len(cache) == 2  # c and d


def test_forget_drops_every_token_of_the_station_and_only_those() -> None:
    cache = TokenCache(60.0, Clock())
    cache.put("s1-token", 1, "U1")
    cache.put("s1-basic", 1, "U1")
    cache.put("s2-token", 2, "U2")
    cache.forget([1])
    assert cache.get("s1-token") is None
    assert cache.get("s1-basic") is None
    assert cache.get("s2-token") is not None
    assert len(cache) == 1
    cache.forget_station(2)
    assert len(cache) == 0


def test_a_digest_moving_to_another_station_leaves_the_old_index() -> None:
    cache = TokenCache(60.0, Clock())
    cache.put("d", 1, "U1")
    cache.put("d", 2, "U2")
    cache.forget([1])
    hit = cache.get("d")
    assert hit is not None
    assert hit.station_id == 2


def test_a_read_that_raced_with_a_revocation_is_not_cached() -> None:
    """The token row was read before the station was revoked, cached after: it must not be
    trusted for a whole ttl."""
    cache = TokenCache(60.0, Clock())
    since = cache.revocations  # the authenticator notes this, then reads the database
    cache.forget([1])  # a re-enrollment commits meanwhile
    cache.put("old-token", 1, "U1", since=since)
    assert cache.get("old-token") is None
    cache.put("old-token", 1, "U1", since=cache.revocations)
    assert cache.get("old-token") is not None


def test_a_zero_ttl_caches_nothing() -> None:
    cache = TokenCache(0.0, Clock())
    cache.put("d", 1, "U1")
    assert cache.get("d") is None
    assert len(cache) == 0


def test_a_bulk_load_replaces_the_cache_and_lives_for_the_ttl() -> None:
    clock = Clock()
    cache = TokenCache(10.0, clock)
    cache.put("gone", 9, "U9")
    assert cache.load([("d1", 1, "U1"), ("d2", 2, "U2")], cache.revocations)
    assert cache.get("gone") is None
    hit = cache.get("d2")
    assert hit is not None
    assert (hit.station_id, hit.uuid) == (2, "U2")
    # The index was loaded too: forgetting a loaded station drops its token.
    cache.forget_station(1)
    assert cache.get("d1") is None
    clock.now += 10.001
    assert cache.get("d2") is None


def test_a_bulk_load_that_raced_with_a_revocation_is_not_stored() -> None:
    cache = TokenCache(10.0, Clock())
    cache.put("d1", 1, "U1")
    since = cache.revocations
    cache.forget_station(1)  # revoked while the snapshot (still holding d1) was read
    assert not cache.load([("d1", 1, "U1")], since)
    assert cache.get("d1") is None


def test_a_zero_ttl_loads_nothing() -> None:
    cache = TokenCache(0.0, Clock())
    assert not cache.load([("d1", 1, "U1")], cache.revocations)
    assert cache.get("d1") is None
