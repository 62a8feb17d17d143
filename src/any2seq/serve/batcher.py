"""Dynamic batching of concurrent requests (as in Clipper, Crankshaw et al., 2017, and TensorFlow
Serving): requests wait a few milliseconds in a queue, those with equal search options are decoded
together in one worker thread, and each gets its own slice of the outputs back. Sampled requests
are decoded alone, so that a seed gives the same samples under any load."""
from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import UserError


@dataclass
class Job:
    inputs: list
    key: tuple  # the search options as sorted (name, value) pairs: only equal keys share a batch
    chars: int  # the text inputs' characters, for the batch budget
    future: asyncio.Future


class Batcher:
    """Collects jobs for ``window_s`` (or until the budget is full) and decodes them as one batch.

    ``run(inputs, options) -> one result per input`` runs in a single worker thread, off the event
    loop; ``call`` runs other model work (attention maps) in the same thread, so the model is
    never used by two threads at once.
    """

    def __init__(self, run: Callable[[list, dict], list], window_s: float = 0.005, batch_inputs: int = 64,
                 batch_chars: int = 16_000):
        self.run, self.window_s, self.batch_inputs, self.batch_chars = run, window_s, batch_inputs, batch_chars
        self.stats = {"batches": 0, "requests": 0, "inputs": 0, "largest_batch": 0}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="any2seq-decode")
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, inputs: list, options: dict) -> list:
        """The results for ``inputs``, decoded in a batch with other requests' inputs."""
        if self._queue is None:
            raise RuntimeError("Batcher.start() was not called (use the app's lifespan)")
        future = asyncio.get_running_loop().create_future()
        chars = sum(len(x) for x in inputs if isinstance(x, str))
        key = tuple(sorted(options.items()))
        if options.get("sample"):  # a sample depends on what shares its batch: alone, a seed repeats it
            key += (("request", id(future)),)
        await self._queue.put(Job(list(inputs), key, chars, future))
        return await future

    async def call(self, fn: Callable, *args) -> Any:
        """``fn(*args)`` in the decoding thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _full(self, jobs) -> bool:
        """Whether jobs with the first job's options already fill a batch."""
        same = [j for j in jobs if j.key == jobs[0].key]
        return sum(len(j.inputs) for j in same) >= self.batch_inputs or sum(j.chars for j in same) >= self.batch_chars

    def _take(self, pending: deque) -> list[Job]:
        """The first pending job and those after it with the same options that fit the budget."""
        first, batch, rest = pending[0], [], deque()
        n_inputs = n_chars = 0
        for job in pending:
            fits = n_inputs + len(job.inputs) <= self.batch_inputs and n_chars + job.chars <= self.batch_chars
            if job.key == first.key and (not batch or fits):
                batch.append(job)
                n_inputs, n_chars = n_inputs + len(job.inputs), n_chars + job.chars
            else:
                rest.append(job)
        pending.clear()
        pending.extend(rest)
        return batch

    async def _loop(self) -> None:
        loop, pending = asyncio.get_running_loop(), deque()
        while True:
            if not pending:
                pending.append(await self._queue.get())
            deadline = loop.time() + self.window_s
            while not self._full(pending) and (timeout := deadline - loop.time()) > 0:
                try:
                    pending.append(await asyncio.wait_for(self._queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
            while not self._queue.empty():  # what arrived while the last batch decoded
                pending.append(self._queue.get_nowait())
            await self._decode([j for j in self._take(pending) if not j.future.done()])

    async def _decode(self, batch: list[Job]) -> None:
        if not batch:
            return
        self.stats["batches"] += 1
        self.stats["requests"] += len(batch)
        self.stats["inputs"] += sum(len(j.inputs) for j in batch)
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(batch))
        options = {k: v for k, v in batch[0].key if k != "request"}
        try:
            results = await self.call(self.run, [x for j in batch for x in j.inputs], options)
        except UserError as e:
            if len(batch) == 1:
                _settle(batch[0].future, error=e)
            else:  # one request's bad input must not fail the others: decode each alone
                for job in batch:
                    await self._decode([job])
            return
        except Exception as e:  # a bug: every waiting request learns of it (a 500)
            for job in batch:
                _settle(job.future, error=e)
            return
        start = 0
        for job in batch:
            _settle(job.future, result=results[start: start + len(job.inputs)])
            start += len(job.inputs)


def _settle(future: asyncio.Future, result=None, error: BaseException | None = None) -> None:
    if future.done():  # the request timed out or its client left
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
