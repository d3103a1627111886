"""Background stages: read-ahead and write-behind keep order and hand errors to the caller's thread."""

from __future__ import annotations

import threading

import pytest

from caduceus_cli.stages import DedicatedThread, WriteBehind, read_ahead


def test_read_ahead_yields_every_item_in_order_from_another_thread():
    threads = []

    def items():
        for number in range(50):
            threads.append(threading.current_thread().name)
            yield number

    assert list(read_ahead(items(), depth=3, name="test-reader")) == list(range(50))
    assert set(threads) == {"test-reader"}


def test_read_ahead_reraises_the_producers_error_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise ValueError("record 3 is broken")

    got = []
    with pytest.raises(ValueError, match="record 3 is broken"):
        for item in read_ahead(items(), depth=1):
            got.append(item)
    assert got == [1, 2]


def test_read_ahead_stops_the_producer_when_the_consumer_stops_early():
    stop = threading.Event()
    produced = []

    def items():
        for number in range(10_000):
            produced.append(number)
            yield number

    for item in read_ahead(items(), depth=2, stop=stop):
        if item == 5:
            break
    assert stop.is_set() and len(produced) < 100


def test_write_behind_consumes_every_item_in_order_on_its_own_thread():
    consumed, threads = [], set()

    def consume(item: int) -> None:
        consumed.append(item)
        threads.add(threading.current_thread().name)

    behind = WriteBehind(consume, depth=2, name="test-writer")
    for number in range(100):
        behind.put(number)
    behind.close()
    assert consumed == list(range(100)) and threads == {"test-writer"}


def test_write_behind_hands_the_consumers_error_to_put_or_close():
    def consume(item: int) -> None:
        if item == 3:
            raise OSError("disk full")

    behind = WriteBehind(consume, depth=1)
    with pytest.raises(OSError, match="disk full"):
        try:
            for number in range(1000):
                behind.put(number)
        finally:
            behind.close()  # the writer thread ends either way


def test_dedicated_thread_runs_calls_on_its_own_thread_and_reraises_their_errors():
    worker = DedicatedThread("test-worker")
    assert worker.run(lambda a, b: (threading.current_thread().name, a + b), 2, 3) == ("test-worker", 5)

    def broken():
        raise ValueError("no such window")

    with pytest.raises(ValueError, match="no such window"):
        worker.run(broken)
    assert worker.run(threading.current_thread) is worker.run(threading.current_thread)  # one thread throughout
    thread = worker.run(threading.current_thread)
    del worker  # the thread ends with its owner
    thread.join(timeout=5)
    assert not thread.is_alive()
