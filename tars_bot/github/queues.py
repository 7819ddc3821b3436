"""Small concurrency helpers for the webhook app: remembering deliveries, per-key work queues."""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class RecentIds:
    """The last `size` ids seen: enough to spot GitHub's redeliveries, bounded in memory."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def add(self, id_: str) -> bool:
        """Remember `id_`; False if it was already remembered."""
        if id_ in self._ids:
            self._ids.move_to_end(id_)
            return False
        self._ids[id_] = None
        if len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True


class SerialQueues(Generic[T]):
    """Items run by `workers` threads, one at a time and in order for each key, so at most
    `workers` keys are served at once. `run` must not raise."""

    def __init__(self, workers: int, run: Callable[[T], None], name: str) -> None:
        self._run = run
        self._waiting: dict[str, deque[T]] = {}  # a key is here while it has work or a worker
        self._ready: deque[str] = deque()  # keys with work waiting and no worker
        self._changed = threading.Condition()
        self._closed = False
        # daemons: uvicorn skips the shutdown on a second Ctrl-C, and must still exit
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True)
            for n in range(1, workers + 1)
        ]
        for thread in self._threads:
            thread.start()

    def put(self, key: str, item: T) -> None:
        with self._changed:
            if self._closed:
                raise RuntimeError("the queues are closed")
            if key in self._waiting:
                self._waiting[key].append(item)
                return
            self._waiting[key] = deque([item])
            self._ready.append(key)
            self._changed.notify()

    def close(self, cancel: Callable[[T], None] | None = None) -> None:
        """Stop taking items and wait for the workers: they finish all items, or, with
        `cancel`, only those started, and each other item is passed to `cancel`."""
        with self._changed:
            self._closed = True
            dropped = self._drop() if cancel is not None else []
            self._changed.notify_all()
        if cancel is not None:
            for item in dropped:
                cancel(item)
        for thread in self._threads:
            thread.join()

    def _drop(self) -> list[T]:
        dropped = [item for items in self._waiting.values() for item in items]
        for items in self._waiting.values():
            items.clear()
        for key in self._ready:
            del self._waiting[key]
        self._ready.clear()
        return dropped

    def _work(self) -> None:
        while (claimed := self._claim()) is not None:
            key, item = claimed
            try:
                self._run(item)
            finally:
                self._release(key)

    def _claim(self) -> tuple[str, T] | None:
        with self._changed:
            self._changed.wait_for(lambda: self._ready or self._closed)
            if not self._ready:
                return None
            key = self._ready.popleft()
            return key, self._waiting[key].popleft()

    def _release(self, key: str) -> None:
        with self._changed:
            if self._waiting[key]:
                self._ready.append(key)
                self._changed.notify()
            else:
                del self._waiting[key]
