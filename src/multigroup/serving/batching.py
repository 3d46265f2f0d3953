"""Micro-batching: the texts of concurrent requests go through the model in one forward pass.

Each request waits in a queue; one worker takes the oldest request, adds whatever else is queued (up to `max_batch`
texts, waiting at most `max_wait` seconds after that oldest request arrived or the previous forward pass ended,
whichever is later), runs `work` on all of them in one thread, and gives each caller back its own answer. While a
forward pass runs, new requests queue up and form the next batch: the busier the server, the larger its batches,
the higher its throughput. The wait after a pass lets the callers it just answered rejoin the next one: without it,
a busy server splits its callers into two cohorts that take turns in half-size batches (MiniLM on 2 cores, 32
callers: 16.1-16.2 texts per pass before, 29.2-31.5 after, 174-195 -> 210-243 requests/s; `scripts/bench_serve.py`).
"""

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    """One caller's texts and decoding options; `future` receives its answer."""

    texts: list[str]
    options: dict
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


class MicroBatcher:
    """Gathers concurrent requests into batches for `work(requests) -> [answer per request]`, run in one thread.

    Examples:

    ```python
    >>> import asyncio
    >>> from multigroup.serving.batching import MicroBatcher
    >>> async def main():
    ...     batcher = MicroBatcher(lambda requests: [len(r.texts) for r in requests], max_batch=8, max_wait=0.01)
    ...     batcher.start()
    ...     answers = await asyncio.gather(*(batcher.submit(["a"] * n) for n in (1, 2, 3)))
    ...     await batcher.stop()
    ...     return answers, batcher.batches
    >>> asyncio.run(main())
    ([1, 2, 3], 1)

    ```
    """

    def __init__(self, work: Callable[[list[Request]], list[Any]], max_batch: int = 32, max_wait: float = 0.005):
        self.work, self.max_batch, self.max_wait = work, max_batch, max_wait
        self.batches = self.texts = 0  # forward passes run so far, and the texts they read
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="multigroup-model")

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def submit(self, texts: list[str], **options) -> Any:
        """Queue `texts` and wait for their answer (what `work` returned for this request)."""
        request = Request(texts, options, asyncio.get_running_loop().create_future())
        self._queue.put_nowait(request)
        return await request.future

    async def stop(self) -> None:
        """Answer every queued request, then stop the worker."""
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        loop, carried, done = asyncio.get_running_loop(), None, 0.0
        while True:
            first = carried or await self._queue.get()
            if first is None:
                return
            batch, size, carried = [first], len(first.texts), None
            opened = max(first.arrived, done)
            while size < self.max_batch:
                wait = opened + self.max_wait - time.monotonic()
                try:
                    nxt = self._queue.get_nowait() if wait <= 0 else await asyncio.wait_for(self._queue.get(), wait)
                except (asyncio.QueueEmpty, asyncio.TimeoutError):
                    break
                if nxt is None:
                    self._queue.put_nowait(None)  # stop once this batch is answered
                    break
                if size + len(nxt.texts) > self.max_batch:
                    carried = nxt  # the first of the next batch
                    break
                batch.append(nxt)
                size += len(nxt.texts)
            await self._answer(loop, batch)
            done = time.monotonic()

    async def _answer(self, loop, batch: list[Request]) -> None:
        self.batches += 1
        self.texts += sum(len(request.texts) for request in batch)
        try:
            answers = await loop.run_in_executor(self._executor, self.work, batch)
        except Exception as error:  # the model failed: every caller of this batch gets the error
            answers = [error] * len(batch)
        for request, answer in zip(batch, answers):
            if request.future.done():  # the caller went away
                continue
            if isinstance(answer, Exception):
                request.future.set_exception(answer)
            else:
                request.future.set_result(answer)


def split_by_length(lengths: list[int], overhead: int = 64) -> list[list[int]]:
    """The positions of a batch's texts, cut into sub-batches of similar length that cost the fewest padded tokens.

    A batch padded to its longest text wastes the padding of every shorter one: concurrent requests arrive in any
    order, so the texts are sorted by length and cut where a new forward pass (costed as `overhead` tokens) is
    cheaper than the padding it saves. Exact (dynamic programming over the sorted lengths; a batch is small).

    Examples:

    ```python
    >>> split_by_length([5, 300, 6, 7, 280])
    [[0, 2, 3], [4, 1]]

    ```
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    sizes = [lengths[i] for i in order]
    cost, cut = [0] + [None] * len(sizes), [0] * (len(sizes) + 1)
    for end in range(1, len(sizes) + 1):  # the cheapest cut of sizes[:end], its last sub-batch sizes[start:end]
        cost[end], cut[end] = min(
            (cost[start] + overhead + (end - start) * sizes[end - 1], start) for start in range(end)
        )
    parts, end = [], len(sizes)
    while end:
        parts.append(order[cut[end] : end])
        end = cut[end]
    return parts[::-1]
