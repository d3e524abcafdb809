"""The Triton kernels against their references, run by Triton's interpreter on CPU tensors."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from daft_flow import kernels
from daft_flow.kernels import mean_pool_l2, pack_tokens, token_buffers

torch = pytest.importorskip("torch")
pytest.importorskip("triton")


from daft_flow.kernels import _triton  # noqa: E402

# Without a GPU, tests/conftest.py sets TRITON_INTERPRET=1 before anything imports Triton (it decides
# then) and the kernels run on CPU tensors; with one, the compiled kernels run on it.
DEVICE = "cpu" if _triton.INTERPRETED else "cuda"
if DEVICE == "cuda" and not torch.cuda.is_available():
    pytest.skip("Triton compiles kernels but torch sees no GPU (set TRITON_INTERPRET=1)", allow_module_level=True)


def on_device(array):
    # DLPack: Arrow's read-only buffers become tensors without a copy (from_numpy would warn).
    return torch.from_dlpack(array).to(DEVICE)


def random_lists(rng: np.random.Generator, n: int, longest: int) -> pa.Array:
    lengths = rng.integers(0, longest + 1, n)
    lengths[:: max(1, n // 3)] = 0  # empty rows
    return pa.array([rng.integers(1, 30000, k).tolist() for k in lengths], pa.list_(pa.int32()))


def all_backends_pack(offsets, values, max_len, **kw):
    ref = pack_tokens(offsets, values, max_len, **kw)
    for backend in ("torch", "triton"):
        ids, mask = pack_tokens(on_device(offsets), on_device(values), max_len, backend=backend, **kw)
        assert ids.dtype == torch.int32 and mask.dtype == torch.int32
        np.testing.assert_array_equal(ids.cpu().numpy(), ref[0], err_msg=backend)
        np.testing.assert_array_equal(mask.cpu().numpy(), ref[1], err_msg=backend)
    return ref


@pytest.mark.parametrize("n,longest,max_len", [(1, 5, 8), (7, 40, 16), (33, 300, 256), (5, 2000, 1500)])
def test_pack_tokens_matches_reference(n, longest, max_len):
    rng = np.random.default_rng(n)
    offsets, values = token_buffers(random_lists(rng, n, longest))
    ids, mask = all_backends_pack(offsets, values, max_len, pad_id=0, end_id=102)
    lengths = np.diff(offsets)
    assert ids.shape == (n, min(max_len, lengths.max()))
    for r in range(n):
        k = min(lengths[r], ids.shape[1])
        row = values[offsets[r]:offsets[r] + k].copy()
        if lengths[r] > ids.shape[1]:
            row[-1] = 102  # a truncated row ends with end_id
        np.testing.assert_array_equal(ids[r, :k], row)
        assert (ids[r, k:] == 0).all() and mask[r].sum() == k


def test_pack_tokens_options():
    arr = pa.array([[5, 6, 7], [], [8, 9, 10, 11, 12]], pa.large_list(pa.int32()))
    offsets, values = token_buffers(arr)
    ids, mask = all_backends_pack(offsets, values, 4, pad_id=-1)
    assert ids.tolist() == [[5, 6, 7, -1], [-1] * 4, [8, 9, 10, 11]]
    assert mask.tolist() == [[1, 1, 1, 0], [0] * 4, [1, 1, 1, 1]]
    ids, _ = all_backends_pack(offsets, values, 16, multiple_of=8)
    assert ids.shape == (3, 8)
    ids, mask = all_backends_pack(offsets, values, 16, width=2, end_id=99)
    assert ids.tolist() == [[5, 99], [0, 0], [8, 99]] and mask.tolist() == [[1, 1], [0, 0], [1, 1]]
    ids, _ = all_backends_pack(offsets, values, 16, width=6)
    assert ids.shape == (3, 6)
    # A slice of an Arrow array: its offsets point into the unsliced values.
    offsets, values = token_buffers(arr.slice(1, 2))
    ids, _ = all_backends_pack(offsets, values, 8)
    assert ids.tolist() == [[0] * 5, [8, 9, 10, 11, 12]]
    ids, mask = all_backends_pack(np.zeros(1, np.int64), np.zeros(0, np.int32), 8)
    assert ids.shape == (0, 0) and mask.shape == (0, 0)


def test_pack_tokens_rejects_bad_input():
    values = np.arange(10, dtype=np.int32)
    with pytest.raises(ValueError, match="row 1 ends before it starts"):
        pack_tokens(np.array([0, 5, 3, 10]), values, 8)
    with pytest.raises(ValueError, match="within"):
        pack_tokens(np.array([0, 11]), values, 8)
    with pytest.raises(ValueError, match="max_len"):
        pack_tokens(np.array([0, 10]), values, 0)
    with pytest.raises(ValueError, match="width"):
        pack_tokens(np.array([0, 10]), values, 8, width=9)
    with pytest.raises(TypeError, match="integer"):
        pack_tokens(np.array([0, 10]), values.astype(np.float32), 8)
    with pytest.raises(ValueError, match="1-D"):
        pack_tokens(np.array([[0, 10]]), values, 8)
    with pytest.raises(ValueError, match="backend"):
        pack_tokens(np.array([0, 10]), values, 8, backend="cuda")
    with pytest.raises(TypeError, match="torch tensors"):
        pack_tokens(np.array([0, 10]), values, 8, backend="triton")
    with pytest.raises(ValueError, match="row 1 is null"):
        token_buffers(pa.array([[1], None], pa.list_(pa.int32())))
    with pytest.raises(TypeError, match="list<int32>"):
        token_buffers(pa.array([1, 2]))


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("b,s,h", [(1, 1, 384), (4, 70, 384), (3, 9, 100)])
def test_mean_pool_l2_matches_reference(dtype, b, s, h):
    rng = np.random.default_rng(b * s)
    hidden = rng.standard_normal((b, s, h)).astype(dtype)
    lengths = rng.integers(0, s + 1, b)
    lengths[0] = s
    if b > 2:
        lengths[1] = 0  # a row without tokens: a zero vector, not NaN
    mask = (np.arange(s)[None, :] < lengths[:, None]).astype(np.int32)
    ref = mean_pool_l2(hidden, mask)
    assert ref.dtype == np.float32 and ref.shape == (b, h)
    for backend in ("torch", "triton"):
        out = mean_pool_l2(on_device(hidden), on_device(mask), backend=backend)
        assert out.dtype == torch.float32
        np.testing.assert_allclose(out.cpu().numpy(), ref, rtol=1e-5, atol=1e-6, err_msg=backend)
    norms = np.linalg.norm(ref, axis=1)
    np.testing.assert_allclose(norms[lengths > 0], 1.0, rtol=1e-5)
    assert (ref[lengths == 0] == 0).all()
    # sentence-transformers' formula, written out: sum(h * m) / clamp(sum(m), 1e-9), then F.normalize.
    m = torch.from_numpy(mask).unsqueeze(-1).float()
    st = (torch.from_numpy(hidden).float() * m).sum(1) / m.sum(1).clamp(min=1e-9)
    np.testing.assert_allclose(torch.nn.functional.normalize(st, dim=1).numpy(), ref, rtol=1e-5, atol=1e-6)


def test_mean_pool_l2_on_strided_views_and_default_dispatch():
    hidden = torch.randn(9, 3, 64).transpose(0, 1)  # [3, 9, 64], not contiguous
    mask = torch.ones(3, 9, dtype=torch.int64)
    ref = mean_pool_l2(hidden.contiguous().numpy(), mask.numpy())
    out = mean_pool_l2(hidden.to(DEVICE), mask.to(DEVICE))
    np.testing.assert_allclose(out.cpu().numpy(), ref, rtol=1e-5, atol=1e-6)
    assert kernels._choose(hidden.to(DEVICE), None) == "triton"  # interpreted on CPU, compiled on a GPU
    assert kernels._choose(hidden.numpy(), None) == "numpy"
    with pytest.raises(ValueError, match=r"\[n, seq, dim\]"):
        mean_pool_l2(hidden, mask[:, :3])


def test_kernels_import_without_torch_or_triton():
    code = ("import sys; sys.modules['torch'] = None; sys.modules['triton'] = None\n"
            "import numpy as np\n"
            "from daft_flow.kernels import pack_tokens, mean_pool_l2, triton_available\n"
            "ids, mask = pack_tokens(np.array([0, 2, 3]), np.array([7, 8, 9], np.int32), 4)\n"
            "assert ids.tolist() == [[7, 8], [9, 0]], ids\n"
            "v = mean_pool_l2(np.ones((2, 2, 3), np.float32), mask)\n"
            "assert abs(float((v * v).sum()) - 2.0) < 1e-5\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
