"""Dynamic batching for the service: uploads are decoded off the event loop (a thread pool), then queue for the
network; while other images are still being decoded or queued, a batch waits for them up to ``max_wait`` seconds,
then everything queued, up to ``max_batch`` crops, goes through the network in one call, on one inference thread.
Concurrent requests therefore share forward passes, and a request alone does not wait at all.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from pynima.scoring.scorer import Scorer

__all__ = ["Batcher"]

log = logging.getLogger(__name__)


class Batcher:
    """Scores prepared crops of many concurrent requests in shared network calls (see the module docstring)."""

    def __init__(self, scorer: Scorer, max_batch: int = 32, max_wait: float = 0.005, on_batch=None):
        self.scorer, self.max_batch, self.max_wait, self.on_batch = scorer, max_batch, max_wait, on_batch
        self.queue: asyncio.Queue = asyncio.Queue()
        self.decoding = 0  # images announced (``expect``) and not yet queued: a batch waits for them
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="pynima-infer")  # one network call at a time
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        """Start the batching task on the running event loop."""
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop the batching task and the scoring thread."""
        if self.task:
            self.task.cancel()
        self.pool.shutdown(wait=True)

    def expect(self, n: int = 1) -> None:
        """``n`` images are being decoded and will come to ``distribution`` (or ``cancel``): batches wait for them."""
        self.decoding += n

    def cancel(self, n: int = 1) -> None:
        """``n`` expected images will not come (they could not be decoded)."""
        self.decoding -= n

    async def distribution(self, x: np.ndarray, expected: bool = False) -> np.ndarray:
        """The 10-bin distribution of one image from its uint8 crops, averaged over them (``expected``: announced
        by ``expect`` before its decoding).
        """
        future = asyncio.get_running_loop().create_future()
        if expected:
            self.decoding -= 1
        await self.queue.put((x, future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            size, deadline = len(batch[0][0]), loop.time() + self.max_wait
            while size < self.max_batch and (self.decoding > 0 or not self.queue.empty()):
                try:
                    item = await asyncio.wait_for(self.queue.get(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    break
                batch.append(item)
                size += len(item[0])
            try:
                p = await loop.run_in_executor(self.pool, self.scorer.distributions, [x for x, _ in batch])
            except Exception as e:  # noqa: BLE001 - an engine failure fails these requests, not the server
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            if self.on_batch:
                self.on_batch(len(batch), size)
            for (_, future), row in zip(batch, p, strict=True):
                if not future.done():  # its client may have gone
                    future.set_result(row)
