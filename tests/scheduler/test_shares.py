"""Dividing the schedules between daemons: shares, and the overlap after a change."""

from __future__ import annotations

import pytest

from scheduler.shares import EVERYTHING, Share, Shares, share_of


@pytest.mark.parametrize("members", [[7], [3, 7], [3, 7, 12], [1, 2, 5, 7, 9]])
def test_the_live_daemons_shares_cover_each_schedule_exactly_once(members):
    shares = [share_of(me, members) for me in members]
    for schedule_id in range(1, 200):
        assert sum(share.owns(schedule_id) for share in shares) == 1


def test_a_share_is_the_daemons_place_among_the_live_ones_by_heartbeat_id():
    assert share_of(12, [3, 12, 7]) == Share(2, 3)
    assert share_of(3, [12, 7]) == Share(0, 3)  # a daemon counts itself, read or not
    assert share_of(5, []) == EVERYTHING


@pytest.fixture
def shares() -> Shares:
    return Shares(overlap=20.0)


def test_a_lone_daemon_holds_everything(shares):
    assert shares.held(0.0) == {EVERYTHING}


def test_the_previous_share_is_held_on_for_the_overlap_then_dropped(shares):
    assert shares.update(Share(0, 2), now=100.0) == EVERYTHING
    assert shares.update(Share(1, 3), now=110.0) == Share(0, 2)
    assert shares.update(Share(1, 3), now=111.0) is None  # no change
    assert shares.held(110.0) == {EVERYTHING}  # the lone daemon's share, until 120
    assert shares.held(125.0) == {Share(0, 2), Share(1, 3)}
    assert shares.held(130.0) == {Share(1, 3)}


def test_coming_back_to_a_share_held_on_keeps_it_without_an_end(shares):
    shares.update(Share(0, 2), now=0.0)
    shares.update(Share(0, 3), now=30.0)
    shares.update(Share(0, 2), now=35.0)
    assert shares.held(40.0) == {Share(0, 2), Share(0, 3)}
    assert shares.held(60.0) == {Share(0, 2)}
