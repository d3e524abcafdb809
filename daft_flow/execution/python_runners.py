"""Python halves of the Python operators: batch functions, async functions and flat_map's list
conversion. The native operator hands each runner a batch's arguments and which rows already
failed; the runner returns the result column and the rows that failed, each with an exception
object or, for a value of the wrong type, a message the operator turns into the same
``TypeError`` the row-wise path raises.

Whatever a user's function or object does, it fails rows, never the run: only
``KeyboardInterrupt``, ``SystemExit`` and other non-``Exception`` exceptions stop a run
(``user_errors.stops_run``), the same on every path.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping
from typing import Any, Callable

import pyarrow as pa

from daft_flow.convert import arrow_to_values, values_to_arrow
from daft_flow.errors import BatchError
from daft_flow.execution import event_loop
from daft_flow.types import DataType
from daft_flow.user_errors import describe, row_error, stops_run

Args = list[tuple[pa.Array, "pa.Array | None"]]
Failures = list[tuple[int, Any]]

# How long a stopping run waits for its cancelled coroutines to finish before leaving them.
_SETTLE_SECONDS = 0.5


def _arg_values(args: Args, arg_types: list[DataType], failures: Failures | None = None) -> list[list[Any]]:
    """Each argument's values per row of the operator's level. With ``failures`` given, rows whose
    value cannot be read back (a pickled object that fails to unpickle) get None and are listed."""
    out = []
    for (array, index), t in zip(args, arg_types):
        unreadable: list[tuple[int, BaseException]] | None = [] if failures is not None else None
        values = arrow_to_values(array, t, unreadable)
        if index is not None:
            rows = index.to_pylist()
            values = [values[i] for i in rows]
            if unreadable:
                bad = dict(unreadable)
                unreadable = [(r, bad[i]) for r, i in enumerate(rows) if i in bad]
        if failures is not None and unreadable:
            failures.extend(unreadable)
        out.append(values)
    return out


def _alive(mask: bytes, n: int, failures: Failures | None = None) -> list[int]:
    """Rows to compute: not failed upstream, nor listed in ``failures`` already."""
    if not failures:
        return list(range(n)) if not any(mask) else [i for i in range(n) if not mask[i]]
    failed = {r for r, _ in failures}
    return [i for i in range(n) if not mask[i] and i not in failed]


class _Stop:
    """A ``KeyboardInterrupt``/``SystemExit`` (or other run-stopping exception) a coroutine raised,
    carried out of the event loop as a value: raised there, it would end the loop's thread."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


async def _within(call: Callable[[], Any], timeout: float, what: str) -> Any:
    """``await call()``, failing with ``TimeoutError`` (naming ``what``) after ``timeout`` seconds
    (0: no limit). The call is cancelled; the run goes on."""
    if not timeout:
        return await call()
    limit = asyncio.timeout(timeout)
    try:
        async with limit:
            return await call()
    except TimeoutError:
        if not limit.expired():
            raise  # the call's own TimeoutError
        raise TimeoutError(f"{what} did not finish within its timeout of {timeout:g} s") from None


async def _guarded(call: Callable[[], Any], op: str, timeout: float = 0.0) -> tuple[bool, Any] | _Stop:
    """Runs one user coroutine: ``(True, value)``, ``(False, exception)`` for a failed row, or a
    ``_Stop``. A ``CancelledError`` is re-raised only when the run itself is being cancelled.
    ``timeout``: seconds before the call fails its row with ``TimeoutError`` (0: none)."""
    try:
        return True, await _within(call, timeout, op)
    except asyncio.CancelledError as e:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        return False, row_error(e, op)
    except Exception as e:
        return False, e
    except BaseException as e:
        return _Stop(e)


AnswerHook = Callable[[int, Any], None]


def _report_answer(on_answer: "AnswerHook | None", row: int, value: Any) -> None:
    """Tells ``on_answer`` (a cache storing answers as they arrive) about one row's value; its
    failure never fails the row."""
    if on_answer is None:
        return
    try:
        on_answer(row, value)
    except Exception as e:  # noqa: BLE001 - the value is still the row's result
        import logging

        logging.getLogger("daft_flow").warning("could not store an answer as it arrived: %s: %s", type(e).__name__, e)


def _raise_stop(outcomes: list[Any]) -> None:
    for outcome in outcomes:
        if isinstance(outcome, _Stop):
            raise outcome.error


class _Cancellable:
    """Tracks the event-loop futures and tasks a runner waits on, so a run that stops early (an
    error, Ctrl-C, a ``stream()`` loop left) cancels its in-flight requests instead of waiting for
    them, and leaves none of them pending on the loop."""

    def _init_cancel(self) -> None:
        self._futures: set[Any] = set()
        self._tasks: set[Any] = set()
        self._futures_lock = threading.Lock()
        self._cancelled = False

    async def _tracked(self, coro: Any) -> Any:
        task = asyncio.current_task()
        with self._futures_lock:
            self._tasks.add(task)
        try:
            return await coro
        finally:
            with self._futures_lock:
                self._tasks.discard(task)

    def _wait(self, coro: Any) -> Any:
        future = event_loop.submit(self._tracked(coro))
        with self._futures_lock:
            if self._cancelled:
                future.cancel()
            self._futures.add(future)
        try:
            while True:
                try:
                    return future.result(timeout=1.0)
                except TimeoutError:
                    if future.done():
                        raise
                    if not event_loop.alive():  # nothing will ever complete it
                        future.cancel()
                        raise RuntimeError("daft_flow's event loop stopped while a batch was in flight") from None
        finally:
            with self._futures_lock:
                self._futures.discard(future)

    def cancel(self) -> None:
        with self._futures_lock:
            self._cancelled = True
            futures, tasks = list(self._futures), list(self._tasks)
        for future in futures:
            future.cancel()
        event_loop.settle(tasks, _SETTLE_SECONDS)


def _batch_results(out: Any, name: str, n: int) -> list[Any]:
    """A batch function's return value as one value per row. A str, bytes or dict of the right
    length is not a batch of results (it would be split into characters or keys): a BatchError."""
    if hasattr(out, "to_pylist"):  # pyarrow
        out = out.to_pylist()
    elif hasattr(out, "tolist") and not isinstance(out, (list, tuple)):  # numpy, pandas
        out = out.tolist()
    if isinstance(out, (str, bytes, bytearray, memoryview, Mapping, set, frozenset)) or not isinstance(out, Iterable):
        raise BatchError(f"{name} returned {type(out).__name__} for a batch of {n} rows; a batch function returns "
                         "one value per row (a list, tuple, numpy or Arrow array)", batch_size=n)
    out = list(out)
    if len(out) != n:
        raise BatchError(f"{name} returned {len(out)} values for a batch of {n} rows", batch_size=n)
    return out


def _index_of(error: BaseException) -> int | None:
    try:
        index = getattr(error, "index", None)
    except Exception:
        return None
    return index if isinstance(index, int) and not isinstance(index, bool) else None


class BatchRunner:
    """``run_python(fn, batch=True)``: one call per batch (or per ``batch_size`` rows).

    A call that raises fails its rows with a ``BatchError``; with ``split`` (``on_batch_error=
    "split"``) it is called again on each half, and so on down to single rows, so only the rows
    that make it raise fail (a batch with one bad value among n costs about 2 log2(n) more calls).
    With ``timeout``, a call still running after it is logged (a sync call cannot be stopped)."""

    def __init__(self, fn: Callable[..., Any], name: str, arg_types: list[DataType], out: DataType,
                 arg_kind: str, batch_size: int, split: bool = False, timeout: float = 0.0) -> None:
        self.fn, self.name, self.arg_types, self.out = fn, name, arg_types, out
        self.arg_kind, self.batch_size = arg_kind, batch_size
        self.split, self.timeout = split, timeout
        self._cancelled = False

    def cancel(self) -> None:
        """A stopping run: no further chunk of a batch is started."""
        self._cancelled = True

    def __call__(self, args: Args, mask: bytes, n: int) -> tuple[Any, Failures]:
        failures: Failures = []
        if self.arg_kind == "arrow":
            rows = _alive(mask, n)
            all_alive = len(rows) == n
            columns: list[Any] = []
            for array, index in args:
                if index is not None:
                    array = array.take(index)
                columns.append(array if all_alive else array.take(pa.array(rows, type=pa.int64())))
        else:
            values = _arg_values(args, self.arg_types, failures)
            rows = _alive(mask, n, failures)
            all_alive = len(rows) == n
            columns = values if all_alive else [[v[i] for i in rows] for v in values]
        step = self.batch_size or max(len(rows), 1)
        outputs: list[Any] = []
        for start in range(0, len(rows), step):
            chunk_rows = rows[start:start + step]
            chunk = [c[start:start + step] for c in columns] if step < len(rows) else columns
            outputs.extend(self._chunk(chunk, chunk_rows, 0, len(chunk_rows), failures))
        if all_alive:
            results = outputs
        else:
            results = [None] * n
            for r, v in zip(rows, outputs):
                results[r] = v
        array, problems = values_to_arrow(results, self.out)
        failures.extend(problems)
        return array, failures

    def _call(self, chunk: list[Any], n: int) -> list[Any]:
        if not self.timeout:
            return _batch_results(self.fn(*chunk), self.name, n)
        from daft_flow.execution.watchdog import watchdog

        token = watchdog.begin(lambda: f"{self.name} on a batch of {n} rows", self.timeout)
        try:
            return _batch_results(self.fn(*chunk), self.name, n)
        finally:
            watchdog.end(token)

    def _chunk(self, chunk: list[Any], rows: list[int], offset: int, size: int, failures: Failures) -> list[Any]:
        """Results of one call on ``chunk`` (rows ``rows``, at ``offset`` in a batch call of
        ``size`` rows); failed rows get None and go to ``failures``."""
        if self._cancelled:
            raise RuntimeError("run cancelled")
        try:
            return self._call(chunk, len(rows))
        except BatchError as e:  # a result of the wrong shape: the function's, not a row's
            failures.extend((r, e) for r in rows)
        except BaseException as e:
            if stops_run(e):
                raise
            if self.split and len(rows) > 1:
                half = len(rows) // 2
                left = self._take(chunk, 0, half)
                right = self._take(chunk, half, len(rows))
                return (self._chunk(left, rows[:half], offset, size, failures)
                        + self._chunk(right, rows[half:], offset + half, size, failures))
            if self.split:
                err = BatchError(f"{self.name} failed on element {offset} of a batch of {size} rows (split down to "
                                 f"it): {describe(e)}", batch_size=size, index=offset)
            else:
                err = BatchError(f"{self.name} failed on a batch of {len(rows)} rows: {describe(e)}",
                                 batch_size=len(rows), index=_index_of(e))
            err.__cause__ = e
            failures.extend((r, err) for r in rows)
        return [None] * len(rows)

    @staticmethod
    def _take(chunk: list[Any], start: int, stop: int) -> list[Any]:
        return [c.slice(start, stop - start) if isinstance(c, pa.Array) else c[start:stop] for c in chunk]


# Rows an async op's batch may be as small as (read(): batches sized to ~batch_bytes of documents).
SMALL_BATCH_ROWS = 16


def async_batches(configured: int, max_in_flight: int) -> int:
    """Batches an async op works on at once: the configured number, or more when that many small
    batches could not keep ``max_in_flight`` calls running (a batch holds its slot until its slowest
    row is done, so the cap would sit half empty). The memory budget still bounds what is admitted."""
    return max(configured, -(-max_in_flight // SMALL_BATCH_ROWS))


class AsyncRunner(_Cancellable):
    """``async def`` functions: every row of the batch is a coroutine on the runtime's event loop,
    at most ``max_in_flight`` running at once across all batches of this op."""

    def __init__(self, fn: Callable[..., Any], name: str, arg_types: list[DataType], out: DataType,
                 max_in_flight: int, on_output: "Callable[[int, int], None] | None" = None,
                 timeout: float = 0.0) -> None:
        self.fn, self.name, self.arg_types, self.out = fn, name, arg_types, out
        self.max_in_flight = max_in_flight
        self.timeout = timeout  # seconds per call (the wait for a max_in_flight slot not included)
        self.on_output = on_output  # told (bytes, rows) of each batch's results, for expanding ops
        self._semaphore: asyncio.Semaphore | None = None
        self._semaphore_loop: asyncio.AbstractEventLoop | None = None
        self._init_cancel()

    reports_answers = True  # __call__ takes on_answer(row, value), called as each row's value arrives

    async def _run(self, calls: list[tuple[int, list[Any]]], on_answer: "AnswerHook | None") -> list[Any]:
        loop = asyncio.get_running_loop()
        if self._semaphore is None or self._semaphore_loop is not loop:
            self._semaphore, self._semaphore_loop = asyncio.Semaphore(self.max_in_flight), loop
        sem, fn, name, timeout = self._semaphore, self.fn, self.name, self.timeout

        async def one(r: int, call_args: list[Any]) -> Any:
            async with sem:
                outcome = await _guarded(lambda: fn(*call_args), name, timeout)
            if not isinstance(outcome, _Stop) and outcome[0]:
                _report_answer(on_answer, r, outcome[1])
            return outcome

        return await asyncio.gather(*(one(r, a) for r, a in calls))

    def __call__(self, args: Args, mask: bytes, n: int, on_answer: "AnswerHook | None" = None) -> tuple[Any, Failures]:
        failures: Failures = []
        values = _arg_values(args, self.arg_types, failures)
        calls = [(r, [v[r] for v in values]) for r in _alive(mask, n, failures)]
        outcomes = self._wait(self._run(calls, on_answer)) if calls else []
        _raise_stop(outcomes)
        results: list[Any] = [None] * n
        for (r, _), (ok, value) in zip(calls, outcomes):
            if ok:
                results[r] = value
            else:
                failures.append((r, value))
        if self.on_output is not None:
            read = [v for v in results if v is not None]  # failed reads say nothing about sizes
            if read:
                self.on_output(sum(len(v) for v in read if hasattr(v, "__len__")), len(read))
        array, problems = values_to_arrow(results, self.out)
        failures.extend(problems)
        return array, failures


class AsListRunner:
    """flat_map's input: each value as a list of elements of the target type."""

    def __init__(self, name: str, arg_type: DataType, out: DataType) -> None:
        self.name, self.arg_type, self.out = name, arg_type, out

    def __call__(self, args: Args, mask: bytes, n: int) -> tuple[Any, Failures]:
        failures: Failures = []
        (values,) = _arg_values(args, [self.arg_type], failures)
        lists: list[Any] = [None] * n
        for r in _alive(mask, n, failures):
            v = values[r]
            if v is None:
                continue
            if isinstance(v, (str, bytes, Mapping)) or not isinstance(v, Iterable):
                failures.append((r, f"needs a list (or iterable) value, got {type(v).__name__}"))
                continue
            try:
                lists[r] = list(v.tolist() if hasattr(v, "tolist") else v)
            except Exception as e:  # an iterable that fails while iterated fails its row
                failures.append((r, e))
        array, problems = values_to_arrow(lists, self.out)
        failures.extend(problems)
        return array, failures


def _batch_error(error: BaseException, name: str, n: int) -> BaseException:
    """A request for several rows failed: each of them fails with a BatchError caused by it
    (a provider's fatal configuration error stays as it is: it stops the run; so does a request
    the budget refused: its rows were not run, ``errors.NOT_DONE``)."""
    from daft_flow.errors import NOT_DONE
    from daft_flow.llm.provider import ProviderConfigError

    if isinstance(error, (BatchError, ProviderConfigError, *NOT_DONE)):
        return error
    err = BatchError(f"{name}: a request for {n} rows failed: {describe(error)}", batch_size=n, index=_index_of(error))
    err.__cause__ = error
    return err


def uses_event_loop(runners: list[Any]) -> bool:
    """Whether any of a run's runners sends coroutines to the runtime's event loop (a runner with
    a cache counts by the op's own runner)."""
    return any(isinstance(getattr(r, "inner", r), _Cancellable) for r in runners)


def row_converter(t: DataType) -> Callable[[pa.Array], tuple[list[Any], list[tuple[int, BaseException]]]]:
    """For the native row loop: values of an argument type without a fast native conversion, and
    the (index, exception) of values that cannot be read back."""

    def convert(array: pa.Array) -> tuple[list[Any], list[tuple[int, BaseException]]]:
        unreadable: list[tuple[int, BaseException]] = []
        return arrow_to_values(array, t, unreadable), unreadable

    return convert


def row_builder(t: DataType) -> Callable[[list[Any]], tuple[Any, list[tuple[int, str]]]]:
    """For the native row loop: results of a type without a fast native builder."""
    return lambda values: values_to_arrow(values, t)


class LlmRunner(_Cancellable):
    """prompt() / embed_text(): the rendered text of each row goes to the provider as coroutines on the
    runtime's event loop. The provider's limiter and concurrency cap are shared by every op using it.

    Prompts are sent in text order within a batch, so rows sharing a prefix (a document's chunks)
    go out together and first, which is what server-side prefix caches reward. A
    ``ProviderConfigError`` (bad key, unknown model) stops the run with one error.
    """

    def __init__(self, spec: Any, provider: Any, model: str, name: str, out: DataType, usage: Any,
                 timeout: float = 0.0) -> None:
        self.spec, self.provider, self.model, self.name, self.out, self.usage = spec, provider, model, name, out, usage
        self.timeout = timeout  # seconds per request, its retries included (0: none)
        # Set by the run's monitor when the run is built: the run's CostBudget (max_cost_usd) and
        # the histogram each request's latency goes to.
        self.budget: Any = None
        self.latency: Any = None
        self._init_cancel()

    async def _call(self, worst_case: "Callable[[], float]", send: "Callable[[Any], Any]") -> Any:
        """``send(call_usage)`` under the run's budget: the request's worst case is reserved first
        (``BudgetExceeded`` when the budget is spent) and replaced by what it cost afterwards."""
        from daft_flow.llm.usage import CallUsage

        call = CallUsage(self.usage, self.latency)
        budget = self.budget
        if budget is None:
            return await send(call)
        reserved = worst_case()
        await budget.reserve(reserved)
        try:
            return await send(call)
        finally:
            budget.settle(reserved, call.cost())

    reports_answers = True  # __call__ takes on_answer(row, value), called as each answer arrives

    async def _prompts(self, calls: list[tuple[int, str]], on_answer: "AnswerHook | None" = None) -> list[Any]:
        spec = self.spec

        async def one(r: int, text: str) -> Any:
            answer = await self._call(
                lambda: self.budget.prompt_worst_case(self.model, text, spec.max_tokens),
                lambda usage: self.provider.complete(
                    text, model=self.model, usage=usage, max_tokens=spec.max_tokens or None,
                    temperature=spec.temperature, response_format=spec.response_format,
                    options=spec.options or None))
            # Providers return a Completion (text and finish reason) or, if they cannot tell, a str;
            # anything else goes on as it is, to fail its row with the type error of every path.
            if isinstance(answer, str) or not hasattr(answer, "text"):
                content, finish_reason = answer, None
            else:
                content, finish_reason = answer.text, getattr(answer, "finish_reason", None)
            if finish_reason == "length":
                self.usage.add(truncated=1)
            value: Any = content
            if spec.response_format is not None:
                from daft_flow.ops.llm_ops import parse_structured

                value = parse_structured(content, spec)
            if spec.include_finish_reason:
                value = {"answer": value, "finish_reason": finish_reason}
            _report_answer(on_answer, r, value)
            return value

        return await asyncio.gather(*(_guarded(lambda r=r, t=t: one(r, t), self.name, self.timeout) for r, t in calls))

    async def _embeddings(self, calls: list[tuple[int, str]], on_answer: "AnswerHook | None" = None) -> list[Any]:
        texts = [t for _, t in calls]
        try:
            groups = [list(g) for g in self.provider.embedding_batches(texts)]
            if sorted(i for g in groups for i in g) != list(range(len(texts))):
                from daft_flow.llm.provider import ProviderError

                raise ProviderError(f"{self.name}: the provider's embedding_batches() must group each of the "
                                    f"{len(texts)} texts exactly once")
        except Exception as e:  # a provider's own bug fails the rows it was asked about
            return [(False, e)] * len(calls)

        async def one(group: list[int]) -> Any:
            batch = [texts[i] for i in group]
            vectors = await self._call(lambda: self.budget.embed_worst_case(self.model, batch),
                                       lambda usage: self.provider.embed(batch, model=self.model, usage=usage))
            if not isinstance(vectors, (list, tuple)) or len(vectors) != len(group):
                from daft_flow.llm.provider import ProviderError

                got = len(vectors) if isinstance(vectors, (list, tuple)) else type(vectors).__name__
                raise ProviderError(f"{self.name}: the provider returned {got} embeddings for {len(group)} texts")
            for j, i in enumerate(group):
                _report_answer(on_answer, calls[i][0], vectors[j])
            return vectors

        answers = await asyncio.gather(*(_guarded(lambda g=g: one(g), self.name, self.timeout) for g in groups))
        outcomes: list[Any] = [(False, RuntimeError(f"{self.name}: the provider grouped no request for this text"))
                               ] * len(calls)
        for group, answer in zip(groups, answers):
            if not isinstance(answer, _Stop) and not answer[0] and len(group) > 1:
                answer = (False, _batch_error(answer[1], self.name, len(group)))
            for j, i in enumerate(group):
                if isinstance(answer, _Stop) or not answer[0]:
                    outcomes[i] = answer
                else:
                    outcomes[i] = (True, answer[1][j])
        return outcomes

    def __call__(self, args: Args, mask: bytes, n: int, on_answer: "AnswerHook | None" = None) -> tuple[Any, Failures]:
        from daft_flow.llm.provider import ProviderConfigError

        (texts,) = _arg_values(args, [DataType("str")])
        failures: Failures = []
        calls: list[tuple[int, str]] = []
        for r in _alive(mask, n):
            if texts[r] is None:
                failures.append((r, ValueError(f"{self.name}: the text to send is null (a field of its template "
                                               "is null)")))
            else:
                calls.append((r, texts[r]))
        if self.spec.kind == "prompt":
            calls.sort(key=lambda c: c[1])
            outcomes = self._wait(self._prompts(calls, on_answer)) if calls else []
        else:
            outcomes = self._wait(self._embeddings(calls, on_answer)) if calls else []
        _raise_stop(outcomes)
        results: list[Any] = [None] * n
        answered = 0
        for (r, _), (ok, value) in zip(calls, outcomes):
            if ok:
                results[r] = value
                answered += 1
            elif isinstance(value, ProviderConfigError):
                raise value
            else:
                failures.append((r, value))
        self.usage.add(rows=answered, errors=len(failures))
        array, problems = values_to_arrow(results, self.out)
        if self.out.kind == "Embedding" and self.out.dimension:
            problems = [(r, f"{msg} (the provider's embedding_dim is {self.out.dimension}: set it to the model's "
                            "dimension)" if "length" in msg else msg) for r, msg in problems]
        failures.extend(problems)
        return array, failures
