"""Background stages: reading ahead of a consumer and writing behind a producer, each on its own thread.

The one pattern every pipeline uses to keep the model busy while files are read and written:
`read_ahead` (FASTA tiles, VCF chunks, the engine's batches) and `WriteBehind` (HDF5 tiles,
scored VCF chunks). Both are bounded, keep order, and hand an error of the background thread to
the caller's thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def read_ahead(
    items: Iterable[T], depth: int, name: str = "caduceus-reader", stop: threading.Event | None = None
) -> Iterator[T]:
    """Iterate `items` on a background thread, at most `depth` items ahead of the consumer.

    An exception raised by `items` re-raises in the consumer. When the consumer stops early, `stop`
    is set and the producer stops at its next item (`items` may check the same event to stop
    sooner); a producer blocked inside `items` (a silent stdin) is left behind as a daemon thread.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = stop if stop is not None else threading.Event()
    end = object()

    def put(item: object) -> None:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                put(item)
            put(end)
        except BaseException as err:  # handed to the consumer, which re-raises it
            put(err)

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not end:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


class WriteBehind(Generic[T]):
    """Calls `consume(item)` for each `put` item, in order, on its own thread, at most `depth` items queued.

    So the producer (the model) does not wait for the disk. `put` re-raises an error that `consume`
    raised earlier; `close` waits until every queued item is consumed and re-raises such an error.
    """

    def __init__(self, consume: Callable[[T], None], depth: int, name: str = "caduceus-writer"):
        self._consume = consume
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._end = object()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(item)

    def close(self) -> None:
        """Wait for every queued item to be consumed; re-raise the consumer's error if it had one."""
        self._queue.put(self._end)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        try:
            while (item := self._queue.get()) is not self._end:
                self._consume(item)
        except BaseException as err:  # handed to the producer's thread, which stops the run
            self._error = err
            while self._queue.get() is not self._end:  # keep the producer from blocking on a full queue
                pass


class DedicatedThread:
    """Runs `call(*args)` on one long-lived daemon thread and hands its result (or error) back; `run` blocks.

    Not for overlap: for memory. glibc serves each thread from its own malloc arena and cache, so
    the short-lived blocks of what runs here (a model's activations) and the long-lived small
    blocks of the caller's thread (the rows a run keeps) do not mix, and the caller's blocks do
    not split the large free blocks the next call reuses (see the engine; measured: even with
    MALLOC_ARENA_MAX=1, the per-thread caches keep most of the gain). The thread ends
    when this object is garbage collected.
    """

    def __init__(self, name: str):
        self._calls: queue.SimpleQueue = queue.SimpleQueue()
        self._name = name
        self._thread: threading.Thread | None = None

    def run(self, call: Callable[..., T], *args: object) -> T:
        if self._thread is None:  # started on first use, so an unused engine holds no thread
            self._thread = threading.Thread(target=_serve, args=(self._calls,), name=self._name, daemon=True)
            self._thread.start()
        done: queue.SimpleQueue = queue.SimpleQueue()
        self._calls.put((call, args, done))
        try:
            result, error = done.get()
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the call in flight ends first, and its result goes
            done.get()  # a process that exits under a running forward pass aborts (C++ threads torn down in use)
            raise
        if error is None:
            return result
        try:
            raise error
        finally:
            error = None  # no cycle through this frame: the error's frames (a batch's tensors) go with it

    def __del__(self) -> None:
        self._calls.put(None)


def _serve(calls: queue.SimpleQueue) -> None:
    """DedicatedThread's loop. It holds only the queue, so the owner can be collected while it waits,
    and never names a result, so nothing of a call stays alive here once the caller has it."""
    while (item := calls.get()) is not None:
        call, args, done = item
        try:
            done.put((call(*args), None))
        except BaseException as err:  # handed to the caller's thread, which re-raises it
            done.put((None, err))
        item = call = args = done = None
