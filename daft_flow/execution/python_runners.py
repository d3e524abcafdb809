"""Python halves of the Python operators: batch functions, async functions and flat_map's list
conversion. The native operator hands each runner a batch's arguments and which rows already
failed; the runner returns the result column and the rows that failed, with their exceptions."""
from __future__ import annotations

import asyncio
from typing import Any, Callable

import pyarrow as pa

from daft_flow.errors import BatchError
from daft_flow.execution import event_loop
from daft_flow.convert import arrow_to_values, values_to_arrow
from daft_flow.types import DataType

Args = list[tuple[pa.Array, "pa.Array | None"]]


def _arg_values(args: Args, arg_types: list[DataType]) -> list[list[Any]]:
    out = []
    for (array, index), t in zip(args, arg_types):
        values = arrow_to_values(array, t)
        if index is not None:
            values = [values[i] for i in index.to_pylist()]
        out.append(values)
    return out


class _Cancellable:
    """Tracks the event-loop futures a runner waits on, so a run that stops early (an error, Ctrl-C,
    a ``stream()`` loop left) cancels its in-flight requests instead of waiting for them."""

    def _init_cancel(self) -> None:
        import threading

        self._futures: set[Any] = set()
        self._futures_lock = threading.Lock()
        self._cancelled = False

    def _wait(self, coro: Any) -> Any:
        future = event_loop.submit(coro)
        with self._futures_lock:
            if self._cancelled:
                future.cancel()
            self._futures.add(future)
        try:
            return future.result()
        finally:
            with self._futures_lock:
                self._futures.discard(future)

    def cancel(self) -> None:
        with self._futures_lock:
            self._cancelled = True
            for future in self._futures:
                future.cancel()


def _alive(mask: bytes, n: int) -> list[int]:
    return [i for i in range(n) if not mask[i]]


class BatchRunner:
    """``run_python(fn, batch=True)``: one call per batch (or per ``batch_size`` rows)."""

    def __init__(self, fn: Callable[..., Any], name: str, arg_types: list[DataType], out: DataType,
                 arg_kind: str, batch_size: int) -> None:
        self.fn, self.name, self.arg_types, self.out = fn, name, arg_types, out
        self.arg_kind, self.batch_size = arg_kind, batch_size

    def __call__(self, args: Args, mask: bytes, n: int) -> tuple[Any, list[tuple[int, Any]]]:
        all_alive = not any(mask)
        rows = list(range(n)) if all_alive else _alive(mask, n)
        failures: list[tuple[int, Any]] = []
        if self.arg_kind == "arrow":
            columns: list[Any] = []
            for array, index in args:
                if index is not None:
                    array = array.take(index)
                columns.append(array if all_alive else array.take(pa.array(rows, type=pa.int64())))
        else:
            values = _arg_values(args, self.arg_types)
            columns = values if all_alive else [[v[i] for i in rows] for v in values]
        step = self.batch_size or max(len(rows), 1)
        outputs: list[Any] = []
        for start in range(0, len(rows), step):
            chunk_rows = rows[start:start + step]
            chunk = [c[start:start + step] for c in columns] if step < len(rows) else columns
            try:
                out = self.fn(*chunk)
                out = out.to_pylist() if hasattr(out, "to_pylist") else list(out)
                if len(out) != len(chunk_rows):
                    raise BatchError(f"{self.name} returned {len(out)} values for a batch of {len(chunk_rows)} rows",
                                     batch_size=len(chunk_rows))
            except BatchError as e:
                failures.extend((r, e) for r in chunk_rows)
                out = [None] * len(chunk_rows)
            except Exception as e:
                err = BatchError(f"{self.name} failed on a batch of {len(chunk_rows)} rows: {type(e).__name__}: {e}",
                                 batch_size=len(chunk_rows), index=getattr(e, "index", None))
                err.__cause__ = e
                failures.extend((r, err) for r in chunk_rows)
                out = [None] * len(chunk_rows)
            outputs.extend(out)
        if all_alive:
            results = outputs
        else:
            results = [None] * n
            for r, v in zip(rows, outputs):
                results[r] = v
        array, problems = values_to_arrow(results, self.out)
        failures.extend((r, msg) for r, msg in problems)
        return array, failures


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
                 max_in_flight: int, on_output: "Callable[[int, int], None] | None" = None) -> None:
        self.fn, self.name, self.arg_types, self.out = fn, name, arg_types, out
        self.max_in_flight = max_in_flight
        self.on_output = on_output  # told (bytes, rows) of each batch's results, for expanding ops
        self._semaphore: asyncio.Semaphore | None = None
        self._init_cancel()

    async def _run(self, calls: list[tuple[int, list[Any]]]) -> list[Any]:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.max_in_flight)
        sem = self._semaphore

        async def one(call_args: list[Any]) -> Any:
            async with sem:
                return await self.fn(*call_args)

        return await asyncio.gather(*(one(a) for _, a in calls), return_exceptions=True)

    def __call__(self, args: Args, mask: bytes, n: int) -> tuple[Any, list[tuple[int, Any]]]:
        values = _arg_values(args, self.arg_types)
        calls = [(r, [v[r] for v in values]) for r in _alive(mask, n)]
        outcomes = self._wait(self._run(calls))
        failures: list[tuple[int, Any]] = []
        results: list[Any] = [None] * n
        for (r, _), outcome in zip(calls, outcomes):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome  # KeyboardInterrupt, SystemExit: stop the run
                failures.append((r, outcome))
            else:
                results[r] = outcome
        if self.on_output is not None:
            read = [v for v in results if v is not None]  # failed reads say nothing about sizes
            if read:
                self.on_output(sum(len(v) for v in read if hasattr(v, "__len__")), len(read))
        array, problems = values_to_arrow(results, self.out)
        failures.extend((r, msg) for r, msg in problems)
        return array, failures


class AsListRunner:
    """flat_map's input: each value as a list of elements of the target type."""

    def __init__(self, name: str, arg_type: DataType, out: DataType) -> None:
        self.name, self.arg_type, self.out = name, arg_type, out

    def __call__(self, args: Args, mask: bytes, n: int) -> tuple[Any, list[tuple[int, Any]]]:
        (values,) = _arg_values(args, [self.arg_type])
        failures: list[tuple[int, Any]] = []
        lists: list[Any] = [None] * n
        for r in _alive(mask, n):
            v = values[r]
            if v is None:
                continue
            if isinstance(v, (str, bytes, dict)) or not hasattr(v, "__iter__"):
                failures.append((r, TypeError(f"{self.name} needs a list (or iterable) value, got {type(v).__name__}")))
                continue
            lists[r] = list(v.tolist() if hasattr(v, "tolist") else v)
        array, problems = values_to_arrow(lists, self.out)
        failures.extend((r, TypeError(f"{self.name} {msg}")) for r, msg in problems)
        return array, failures


def row_converter(t: DataType) -> Callable[[pa.Array], list[Any]]:
    """For the native row loop: values of an argument type without a fast native conversion."""
    return lambda array: arrow_to_values(array, t)


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

    def __init__(self, spec: Any, provider: Any, model: str, name: str, out: DataType, usage: Any) -> None:
        self.spec, self.provider, self.model, self.name, self.out, self.usage = spec, provider, model, name, out, usage
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

    async def _prompts(self, calls: list[tuple[int, str]]) -> list[Any]:
        spec = self.spec

        async def one(text: str) -> Any:
            answer = await self._call(
                lambda: self.budget.prompt_worst_case(self.model, text, spec.max_tokens),
                lambda usage: self.provider.complete(
                    text, model=self.model, usage=usage, max_tokens=spec.max_tokens or None,
                    temperature=spec.temperature, response_format=spec.response_format,
                    options=spec.options or None))
            # Providers return a Completion (text and finish reason) or, if they cannot tell, a str.
            content, finish_reason = (answer, None) if isinstance(answer, str) else (answer.text, answer.finish_reason)
            if finish_reason == "length":
                self.usage.add(truncated=1)
            value: Any = content
            if spec.response_format is not None:
                from daft_flow.ops.llm_ops import parse_structured

                value = parse_structured(content, spec)
            if spec.include_finish_reason:
                return {"answer": value, "finish_reason": finish_reason}
            return value

        return await asyncio.gather(*(one(t) for _, t in calls), return_exceptions=True)

    async def _embeddings(self, calls: list[tuple[int, str]]) -> list[Any]:
        texts = [t for _, t in calls]
        groups = self.provider.embedding_batches(texts)

        async def one(group: list[int]) -> Any:
            batch = [texts[i] for i in group]
            return await self._call(lambda: self.budget.embed_worst_case(self.model, batch),
                                    lambda usage: self.provider.embed(batch, model=self.model, usage=usage))

        answers = await asyncio.gather(*(one(g) for g in groups), return_exceptions=True)
        outcomes: list[Any] = [None] * len(calls)
        for group, answer in zip(groups, answers):
            for j, i in enumerate(group):
                outcomes[i] = answer if isinstance(answer, BaseException) else answer[j]
        return outcomes

    def __call__(self, args: Args, mask: bytes, n: int) -> tuple[Any, list[tuple[int, Any]]]:
        from daft_flow.llm.provider import ProviderConfigError

        (texts,) = _arg_values(args, [DataType("str")])
        failures: list[tuple[int, Any]] = []
        calls: list[tuple[int, str]] = []
        for r in _alive(mask, n):
            if texts[r] is None:
                failures.append((r, ValueError(f"{self.name}: the text to send is null (a field of its template "
                                               "is null)")))
            else:
                calls.append((r, texts[r]))
        if self.spec.kind == "prompt":
            calls.sort(key=lambda c: c[1])
            outcomes = self._wait(self._prompts(calls))
        else:
            outcomes = self._wait(self._embeddings(calls))
        results: list[Any] = [None] * n
        answered = 0
        for (r, _), outcome in zip(calls, outcomes):
            if isinstance(outcome, BaseException):
                if isinstance(outcome, ProviderConfigError) or not isinstance(outcome, Exception):
                    raise outcome
                failures.append((r, outcome))
            else:
                results[r] = outcome
                answered += 1
        self.usage.add(rows=answered, errors=len(failures))
        array, problems = values_to_arrow(results, self.out)
        failures.extend((r, msg) for r, msg in problems)
        return array, failures
