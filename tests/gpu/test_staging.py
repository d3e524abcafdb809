"""Arrow columns to tensors through DLPack, and the GPU stage's chunking (its CPU path)."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from daft_flow.gpu.staging import DeviceStage, arrow_to_tensor, chunk_ranges, tensor_to_arrow

torch = pytest.importorskip("torch")


def test_arrow_columns_become_tensors_without_a_copy():
    floats = pa.array(np.arange(6, dtype=np.float32))
    t = arrow_to_tensor(floats, "op")
    assert t.dtype == torch.float32 and t.data_ptr() == floats.buffers()[1].address
    emb = pa.FixedSizeListArray.from_arrays(pa.array(np.arange(12, dtype=np.float32)), 3)
    sliced = emb.slice(1, 2)
    e = arrow_to_tensor(sliced, "op")
    assert e.shape == (2, 3) and e.tolist() == [[3, 4, 5], [6, 7, 8]]
    assert e.data_ptr() == emb.values.buffers()[1].address + 3 * 4
    ints = pa.chunked_array([pa.array([1, 2], pa.int64()), pa.array([3], pa.int64())])
    assert arrow_to_tensor(ints, "op").tolist() == [1, 2, 3]


def test_bad_columns_name_the_row_and_the_type():
    with pytest.raises(ValueError, match="op: row 1 is null"):
        arrow_to_tensor(pa.array([1.0, None]), "op")
    with pytest.raises(TypeError, match="numeric columns"):
        arrow_to_tensor(pa.array(["a"]), "op")


def test_results_go_back_to_arrow():
    assert tensor_to_arrow(torch.tensor([1.0, 2.0]), "op").to_pylist() == [1.0, 2.0]
    emb = tensor_to_arrow(torch.ones(2, 3), "op")
    assert emb.type == pa.list_(pa.float32(), 3) and emb.to_pylist() == [[1.0] * 3] * 2
    with pytest.raises(ValueError, match=r"\[n\] or \[n, dim\]"):
        tensor_to_arrow(torch.ones(2, 3, 4), "op")


def test_cpu_stage_runs_every_chunk_in_order():
    assert chunk_ranges(10, 4) == [(0, 4), (4, 8), (8, 10)] and chunk_ranges(0, 4) == []
    seen = []

    def fn(x, y):
        seen.append(x.shape[0])
        return x * 2 + y

    stage = DeviceStage(None, chunk_rows=4)
    x = torch.arange(10, dtype=torch.float32)
    y = torch.ones(10, 2)[:, 0]
    assert stage.run([x, y], fn).tolist() == (x * 2 + 1).tolist() and seen == [4, 4, 2]
    with pytest.raises(ValueError, match="same number of rows"):
        stage.run([x, y[:3]], fn)
    with pytest.raises(ValueError, match="returned 1 rows for a chunk of 4"):
        stage.run([x], lambda t: t[:1])
