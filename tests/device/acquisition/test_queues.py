import threading

import pytest

from device.acquisition.queues import DropOldestQueue


def test_full_queue_drops_oldest_and_counts():
    q = DropOldestQueue(3)
    for i in range(5):
        q.put(i)
    assert q.dropped == 2
    assert q.drain() == [2, 3, 4]
    assert len(q) == 0


def test_get_waits_with_a_deadline():
    q = DropOldestQueue(2)
    assert q.get(timeout=0.05) is None
    threading.Timer(0.02, q.put, args=("x",)).start()
    assert q.get(timeout=2) == "x"


def test_rejects_nonsense_size():
    with pytest.raises(ValueError, match="maxsize"):
        DropOldestQueue(0)
