"""Dynamic batching of concurrent requests (as in Clipper, Crankshaw et al., 2017, and TensorFlow
Serving): requests wait a few milliseconds in a queue, those with equal search options are decoded
together in one worker thread, and each gets its own slice of the outputs back. Sampled requests
are decoded alone, so that a seed gives the same samples under any load.

A large request is decoded in chunks that fit the batch budget, taken in turn with other requests'
chunks (round robin), so it cannot hold the worker for long; and a batch whose requests have all
gone (timed out, or their clients left) stops within one search step (``check``)."""
from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import UserError


class Cancelled(Exception):
    """Raised in the worker thread when no request still waits for the batch it decodes."""


@dataclass
class Job:
    inputs: list
    labels: list[str]  # how an error names each input: "inputs[3]", "upload 2 (cat.png)"
    costs: list[int]  # each input's share of the batch budget
    key: tuple  # the search options as sorted (name, value) pairs: only equal keys share a batch
    future: asyncio.Future
    results: list = field(default_factory=list)  # outputs of the inputs decoded so far, in order

    def fitting(self, inputs: int, cost: int) -> int:
        """How many of the next inputs fit in ``inputs`` inputs and ``cost``."""
        start, n = len(self.results), 0
        while start + n < len(self.inputs) and n < inputs and self.costs[start + n] <= cost:
            cost -= self.costs[start + n]
            n += 1
        return n


@dataclass
class Part:
    """The next ``count`` inputs of a job, in one batch."""

    job: Job
    count: int

    @property
    def span(self) -> slice:
        return slice(len(self.job.results), len(self.job.results) + self.count)


class Batcher:
    """Collects jobs for ``window_s`` (or until the budget is full) and decodes them in batches of
    at most ``batch_inputs`` inputs and ``batch_cost`` cost.

    ``run(inputs, labels, options) -> one result per input`` runs in a single worker thread, off the
    event loop; ``call`` runs other model work (attention maps) in the same thread, so the model is
    never used by two threads at once.
    """

    def __init__(self, run: Callable[[list, list, dict], list], window_s: float = 0.005, batch_inputs: int = 64,
                 batch_cost: int = 32_000):
        self.run, self.window_s, self.batch_inputs, self.batch_cost = run, window_s, batch_inputs, batch_cost
        # "cancelled": requests whose decoding stopped before their end, as nobody waited any more
        self.stats = {"batches": 0, "requests": 0, "inputs": 0, "largest_batch": 0, "cancelled": 0}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="any2seq-decode")
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._decoding: list[Job] = []  # the jobs of the batch in the worker now

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

    async def submit(self, inputs: list, options: dict, labels: list[str] | None = None,
                     costs: list[int] | None = None) -> list:
        """The results for ``inputs``, decoded in batches with other requests' inputs. Cancelling
        the caller (a timeout, a client gone) stops the decoding of its inputs."""
        if self._queue is None:
            raise RuntimeError("Batcher.start() was not called (use the app's lifespan)")
        future = asyncio.get_running_loop().create_future()
        labels = labels or [f"inputs[{i}]" for i in range(len(inputs))]
        costs = costs or [len(x) + 1 if isinstance(x, str) else 1 for x in inputs]
        key = tuple(sorted(options.items()))
        if options.get("sample"):  # a sample depends on what shares its batch: alone, a seed repeats it
            key += (("request", id(future)),)
        await self._queue.put(Job(list(inputs), list(labels), list(costs), key=key, future=future))
        return await future

    async def call(self, fn: Callable, *args) -> Any:
        """``fn(*args)`` in the decoding thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def check(self) -> None:
        """In the worker thread, between search steps: raise ``Cancelled`` if every request in the
        batch being decoded has gone, so its decoding stops."""
        jobs = self._decoding
        if jobs and all(j.future.done() for j in jobs):
            raise Cancelled

    def _full(self, jobs) -> bool:
        """Whether jobs with the first job's options already fill a batch."""
        same = [j for j in jobs if j.key == jobs[0].key]
        return (sum(len(j.inputs) - len(j.results) for j in same) >= self.batch_inputs
                or sum(sum(j.costs[len(j.results):]) for j in same) >= self.batch_cost)

    def _take(self, pending: deque) -> list[Part]:
        """The first pending job's next inputs, and those of the jobs after it with the same options
        that fit the budget; the jobs taken leave ``pending``."""
        first, parts, rest = pending[0], [], deque()
        room_inputs, room_cost = self.batch_inputs, self.batch_cost
        for job in pending:
            count = job.fitting(room_inputs, room_cost) if job.key == first.key else 0
            if job is first:
                count = max(count, 1)  # one input over the budget still gets decoded, alone
            if count == 0:
                rest.append(job)
                continue
            parts.append(Part(job, count))
            room_inputs -= count
            room_cost -= sum(job.costs[parts[-1].span])
        pending.clear()
        pending.extend(rest)
        return parts

    async def _loop(self) -> None:
        loop, pending, unfinished = asyncio.get_running_loop(), deque(), []
        while True:
            if not pending and not unfinished:
                pending.append(await self._queue.get())
            deadline = loop.time() + self.window_s
            while not unfinished and not self._full(pending) and (timeout := deadline - loop.time()) > 0:
                try:
                    pending.append(await asyncio.wait_for(self._queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
            while not self._queue.empty():  # what arrived while the last batch decoded
                pending.append(self._queue.get_nowait())
            pending.extend(unfinished)  # after those: a large request takes turns with the others
            live = deque(j for j in pending if not j.future.done())
            self.stats["cancelled"] += len(pending) - len(live)  # gone before their (next) turn
            unfinished = await self._decode(self._take(live)) if live else []
            pending = live

    async def _decode(self, parts: list[Part]) -> list[Job]:
        """Decode ``parts`` as one batch; the jobs that still have inputs to decode."""
        jobs = [p.job for p in parts]
        self.stats["batches"] += 1
        self.stats["requests"] += sum(not p.job.results for p in parts)
        self.stats["inputs"] += sum(p.count for p in parts)
        self.stats["largest_batch"] = max(self.stats["largest_batch"], len(parts))
        options = {k: v for k, v in jobs[0].key if k != "request"}
        inputs = [x for p in parts for x in p.job.inputs[p.span]]
        labels = [x for p in parts for x in p.job.labels[p.span]]
        self._decoding = jobs
        try:
            results = await self.call(self.run, inputs, labels, options)
        except Cancelled:  # every job in it has gone: stopped mid-search
            self.stats["cancelled"] += len(jobs)
            return []
        except UserError as e:
            if len(parts) == 1:
                _settle(jobs[0].future, error=e)
                return []
            # one request's bad input must not fail the others: decode each alone
            return [j for p in parts for j in await self._decode([p])]
        except Exception as e:  # a bug: every waiting request learns of it (a 500)
            for job in jobs:
                _settle(job.future, error=e)
            return []
        finally:
            self._decoding = []
        start, unfinished = 0, []
        for part in parts:
            part.job.results.extend(results[start: start + part.count])
            start += part.count
            if len(part.job.results) < len(part.job.inputs):
                unfinished.append(part.job)
            else:
                _settle(part.job.future, result=part.job.results)
        return unfinished


def _settle(future: asyncio.Future, result=None, error: BaseException | None = None) -> None:
    if future.done():  # the request timed out or its client left
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
