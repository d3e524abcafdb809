"""How the source sizes batches: they grow back after a large input, and a large flat_map fan-out
streams within its memory budget (child levels included)."""
import pytest

import daft_flow as dflow


def batch_sizes_of(flow_input, values, **options):
    sizes = []

    def record(xs):
        sizes.append(len(xs))
        return [len(x) for x in xs]

    flow = dflow.Flow("x", flow_input)
    flow["n"] = flow["x"].run_python(record, batch=True, return_type=int)
    rows = flow.collect_batch(values, **options)
    return sizes, rows


@pytest.mark.parametrize("kind", ["list", "iterable"])
def test_batches_grow_back_after_one_input_larger_than_batch_bytes(kind):
    def inputs():
        yield "x" * (2 << 20)
        for _ in range(20_000):
            yield "s"

    values = list(inputs()) if kind == "list" else inputs()
    sizes, rows = batch_sizes_of(str, values, batch_bytes="1MB")
    assert len(rows) == 20_001 and rows[0]["n"] == 2 << 20 and rows[-1]["n"] == 1
    assert sizes[0] == 1  # the large input alone
    assert max(sizes) >= 4096, sizes  # then doubling back up, not one row per batch
    assert len(sizes) < 30, f"{len(sizes)} batches for 20,001 inputs"


def test_batches_still_close_at_batch_bytes():
    sizes, _ = batch_sizes_of(str, ["y" * 1000] * 3000, batch_bytes="100KB")
    assert max(sizes) <= 100 and sum(sizes) == 3000


def test_a_large_flat_map_fan_out_streams_within_its_memory_budget():
    psutil = pytest.importorskip("psutil")
    children = 50_000
    flow = dflow.Flow("x", int).flat_map(lambda x: range(children))
    proc = psutil.Process()
    base = peak = proc.memory_info().rss
    n = 0
    for _ in flow.stream(range(60), memory_budget="16MB"):
        n += 1
        if n % 10_000 == 0:
            peak = max(peak, proc.memory_info().rss)
    assert n == 60 * children
    # Converted whole, the first batch alone (64 inputs x 50,000 children as dicts) took 800+ MB.
    assert peak - base < 200 * 2**20, f"RSS grew {(peak - base) / 2**20:.0f} MB with a 16 MB budget"


def test_a_fan_out_plan_shows_its_first_rows_early():
    seen = []
    flow = dflow.Flow("x", int).flat_map(lambda x: seen.append(x) or [x, x])
    stream = flow.stream(range(100_000))
    assert next(stream) == {"item": 0}
    assert len(seen) < 100_000  # the first rows came before the whole input was mapped
    stream.close()
