"""The status server's admission rules (issue 18 A2/A3): pure, no sockets, no clock."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.core.admission import (
    ACCEPT_RETRY_FIRST_S,
    ACCEPT_RETRY_MAX_S,
    MAX_CONNECTIONS,
    MIN_CONNECTIONS,
    Conn,
    Kind,
    Limits,
    accept_error_is_peers,
    accept_retry_after,
    admit_connection,
    admit_request,
    budget_for_fds,
    shed_for_descriptors,
)

H, S, P, E = Kind.HEAD, Kind.SCRAPE, Kind.PAGE, Kind.STREAM
SMALL = Limits(max_connections=6, max_per_client=4, reserved_for_scrapes=2, max_streams=2)


def conns(*specs: tuple[str, Kind]) -> list[Conn]:
    return [Conn(i + 1, peer, kind) for i, (peer, kind) in enumerate(specs)]


def test_admit_connection_below_the_caps_evicts_nothing() -> None:
    assert admit_connection(conns(("a", H), ("b", S)), "c", SMALL).evict == ()
    assert admit_connection([], "a", SMALL).admit


def test_admit_connection_at_the_cap_sheds_the_heaviest_clients_oldest_idle() -> None:
    live = conns(("b", H), ("a", H), ("a", H), ("a", S), ("c", E), ("c", P))
    verdict = admit_connection(live, "d", SMALL)
    assert verdict.admit
    assert verdict.evict == (2,)  # "a" holds three; its oldest idle one is #2, not "b"'s #1
    assert verdict.reason == "full"


def test_admit_connection_refuses_when_nothing_is_idle() -> None:
    live = conns(("a", S), ("a", S), ("b", P), ("b", E), ("c", E), ("c", S))
    assert admit_connection(live, "d", SMALL) == admit_connection(live, "d", SMALL)
    verdict = admit_connection(live, "d", SMALL)
    assert not verdict.admit
    assert verdict.evict == ()
    assert verdict.reason == "full"


def test_a_client_at_its_cap_makes_room_with_its_own_idle_socket() -> None:
    live = conns(("b", H), ("a", S), ("a", H), ("a", H), ("a", H))
    verdict = admit_connection(live, "a", SMALL)
    assert verdict.admit
    assert verdict.evict == (3,)  # its own oldest idle, never "b"'s
    assert verdict.reason == "client_full"


def test_a_client_at_its_cap_with_nothing_idle_is_refused_without_evicting() -> None:
    live = conns(("b", H), ("a", S), ("a", S), ("a", P), ("a", E))
    verdict = admit_connection(live, "a", SMALL)
    assert (verdict.admit, verdict.evict, verdict.reason) == (False, (), "client_full")


def test_a_scrape_always_proceeds() -> None:
    live = conns(("a", P), ("a", P), ("a", E), ("a", E), ("x", H))
    assert admit_request(live, 5, S, SMALL).admit


def test_page_work_never_takes_the_scrapes_reserved_slots() -> None:
    live = conns(("a", P), ("a", P), ("b", E), ("b", E), ("x", H))  # page slots: 6 - 2 = 4
    verdict = admit_request(live, 5, P, SMALL)
    assert (verdict.admit, verdict.reason) == (False, "page_full")
    live = conns(("a", P), ("a", P), ("b", E), ("x", H))
    assert admit_request(live, 4, P, SMALL).admit


def test_a_new_stream_replaces_the_oldest_stream_of_the_client_holding_most() -> None:
    live = conns(("a", E), ("b", E), ("b", E), ("x", H))
    limits = Limits(max_connections=8, max_per_client=8, reserved_for_scrapes=2, max_streams=3)
    verdict = admit_request(live, 4, E, limits)
    assert (verdict.admit, verdict.evict, verdict.reason) == (True, (2,), "streams_full")


def test_a_stream_below_the_stream_cap_replaces_nothing() -> None:
    assert admit_request(conns(("a", E), ("x", H)), 2, E, SMALL) == admit_request(
        conns(("x", H)), 1, E, SMALL
    )
    assert admit_request(conns(("a", E), ("x", H)), 2, E, SMALL).evict == ()


def test_shed_for_descriptors_picks_an_idle_socket_or_none() -> None:
    assert shed_for_descriptors(conns(("a", S), ("b", H), ("a", H), ("a", H))) == 3
    assert shed_for_descriptors(conns(("a", S), ("b", E))) is None


@pytest.mark.parametrize(
    ("soft", "services", "cap"),
    [
        (None, 2, MAX_CONNECTIONS),
        (1024, 2, MAX_CONNECTIONS),
        (256, 2, (256 - 136) // 2),
        (100, 2, MIN_CONNECTIONS),
        (1024, 500, MIN_CONNECTIONS),
    ],
)
def test_budget_for_fds_sizes_the_cap_below_the_descriptor_limit(
    soft: int | None, services: int, cap: int
) -> None:
    budget = budget_for_fds(soft, services)
    assert budget.limits.max_connections == cap
    if soft is not None and not budget.short:
        assert budget.needed <= soft


def test_budget_for_fds_says_when_the_limit_is_too_low() -> None:
    assert budget_for_fds(1024, 500).short
    assert not budget_for_fds(16384, 500).short
    assert not budget_for_fds(None, 500).short


@given(st.integers(min_value=2, max_value=100_000))
def test_limits_for_any_cap_are_valid_and_keep_slots_for_scrapes(cap: int) -> None:
    limits = Limits.for_cap(cap)
    assert limits.max_connections == cap
    assert limits.reserved_for_scrapes >= 1
    assert 1 <= limits.max_streams <= limits.page_slots < cap


@pytest.mark.parametrize(
    "kw",
    [
        {"max_connections": 1},
        {"max_per_client": 0},
        {"reserved_for_scrapes": 0},
        {"reserved_for_scrapes": 64},
        {"max_streams": 57},
        {"head_timeout_s": 0.0},
        {"stream_lifetime_s": float("nan")},
    ],
)
def test_limits_refuse_bounds_that_starve_someone(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Limits(**kw)  # type: ignore[arg-type]


def test_accept_retry_doubles_to_a_cap_and_restarts_after_a_shed() -> None:
    waits = [accept_retry_after(None, shed=False)]
    for _ in range(12):
        waits.append(accept_retry_after(waits[-1], shed=False))
    assert waits[0] == ACCEPT_RETRY_FIRST_S == 0.01
    assert waits == sorted(waits)
    assert waits[-1] == ACCEPT_RETRY_MAX_S == 1.0
    assert accept_retry_after(1.0, shed=True) == ACCEPT_RETRY_FIRST_S


def test_accept_errors_of_one_dead_peer_need_no_back_off() -> None:
    assert accept_error_is_peers(errno.ECONNABORTED)
    for shortage in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, None):
        assert not accept_error_is_peers(shortage)


@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from(list(Kind))), max_size=12),
    st.sampled_from("abcd"),
)
def test_admit_connection_never_lets_the_table_pass_its_caps(
    specs: list[tuple[str, Kind]], peer: str
) -> None:
    live = conns(*specs)
    verdict = admit_connection(live, peer, SMALL)
    after = [c for c in live if c.seq not in verdict.evict]
    assert set(verdict.evict) <= {c.seq for c in live if c.kind is H}  # only idle ones go
    if verdict.admit:
        after.append(Conn(99, peer))
        assert len(after) <= max(SMALL.max_connections, len(live))
        mine = sum(1 for c in after if c.peer == peer)
        assert mine <= max(SMALL.max_per_client, sum(1 for c in live if c.peer == peer))
    else:
        assert verdict.evict == ()
