"""Snapshot quotas as a property: whatever clients do, each stays within its own quota.

Random interleavings of clients taking, reading, orphaning and dropping snapshots of random
sizes (:class:`~turngym.server.accounting.SnapshotStore`). After every operation: each owner
keeps at most its count and byte quota, its byte count is exact, one client's snapshot never
evicts another's, every kept id can be read and every forgotten one is refused, and the whole
store stays within ``owners x snapshot_bytes + orphan_bytes``.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from turngym.server.accounting import Owner, Snapshot, SnapshotStore, _size
from turngym.server.limits import Quotas
from turngym.server.protocol import ObservationData, ProtocolError

QUOTAS = Quotas(snapshots=5, snapshot_bytes=6_000, orphans=7, orphan_bytes=9_000)
OWNERS = 3


def snapshot(size: int) -> Snapshot:
    last = ObservationData(observation={"text": "t"})
    return Snapshot(served=None, env_kwargs={}, state=b"s" * size, turn=0,  # type: ignore[arg-type]
                    episode_id=None, last=last)  # fmt: skip


operations = st.lists(st.one_of(
    st.tuples(st.just("put"), st.integers(0, OWNERS - 1), st.integers(0, 7_000)),
    st.tuples(st.just("get"), st.integers(0, OWNERS - 1), st.integers(0, 10)),
    st.tuples(st.just("orphan"), st.integers(0, OWNERS - 1), st.just(0)),
    st.tuples(st.just("drop"), st.integers(0, OWNERS - 1), st.just(0)),
), max_size=60)  # fmt: skip


def kept(owner: Owner) -> set[str]:
    return set(owner.snapshots)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_each_client_stays_within_its_quota_and_never_evicts_another(ops):
    store = SnapshotStore(QUOTAS)
    owners = [Owner(f"o{i}", QUOTAS.snapshots, QUOTAS.snapshot_bytes) for i in range(OWNERS)]
    ever: set[str] = set()
    for kind, who, arg in ops:
        owner = owners[who]
        others = {o.id: kept(o) for o in owners if o is not owner}
        if kind == "put":
            try:
                ever.add(store.put(owner, snapshot(arg)))
            except ProtocolError as err:  # one snapshot over the whole quota: nothing changes
                assert _size(snapshot(arg)) > QUOTAS.snapshot_bytes
                assert err.extra["limit_bytes"] == QUOTAS.snapshot_bytes
        elif kind == "get" and owner.snapshots:
            snapshot_id = list(owner.snapshots)[arg % len(owner.snapshots)]
            store.get(snapshot_id)
            assert list(owner.snapshots)[-1] == snapshot_id  # now the most recently used
        elif kind == "orphan":
            store.orphan(owner)
        elif kind == "drop":
            store.drop(owner)
        for other in owners:  # nobody else lost anything
            if other is not owner:
                assert kept(other) == others[other.id]
        pool = store._orphans
        for holder in [*owners, pool]:
            assert len(holder.snapshots) <= holder.snapshot_limit
            assert holder.nbytes == sum(_size(s) for s in holder.snapshots.values())
            assert holder.nbytes <= holder.byte_limit
            for snapshot_id in list(holder.snapshots):
                assert store.get(snapshot_id) is holder.snapshots[snapshot_id]
        alive = set().union(*(kept(h) for h in [*owners, pool]))
        for snapshot_id in ever - alive:
            with pytest.raises(ProtocolError, match="Unknown snapshot_id"):
                store.get(snapshot_id)
        stats = store.stats()
        assert stats["snapshots"] == len(alive)
        assert stats["snapshot_bytes"] <= OWNERS * QUOTAS.snapshot_bytes + QUOTAS.orphan_bytes
