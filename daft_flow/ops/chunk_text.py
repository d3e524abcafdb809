"""chunk_text: a child level with one row per chunk of a text (chunk, chunk_index, start_offset,
end_offset). Options are checked when the op is built; the chunking itself is native
(``text::ChunkTextOperator``)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daft_flow.ops.registry import LevelOrigin, register
from daft_flow.types import DataType

if TYPE_CHECKING:
    from daft_flow.execution.physical import Lowering
    from daft_flow.plan import flow_pb2 as ir
    from daft_flow.plan.trace import Tracer
    from daft_flow.text.tokenizer import Tokenizer

DEFAULT_MAX_CHARS = 1000
DEFAULT_OVERLAP = 200
DEFAULT_MAX_TOKENS = 256
DEFAULT_OVERLAP_TOKENS = 32

_TEXT_KINDS = ("str", "HTML")
ATTRIBUTES = (("chunk_index", DataType("int")), ("start_offset", DataType("int")), ("end_offset", DataType("int")))


def check_text(dtype: DataType, op: str, field: str, flow: str) -> None:
    if dtype.kind not in _TEXT_KINDS:
        raise TypeError(f'{op} needs str, field "{field}" of flow "{flow}" is {dtype}')


@register
class ChunkText(LevelOrigin):
    """How chunk_text splits: by characters (``max_tokens == 0``) or by tokens of ``tokenizer``."""

    kind = "chunk_text"

    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS, overlap: int = DEFAULT_OVERLAP, max_tokens: int = 0,
                 overlap_tokens: int = 0, tokenizer: "Tokenizer | None" = None) -> None:
        self.max_chars, self.overlap = max_chars, overlap
        self.max_tokens, self.overlap_tokens = max_tokens, overlap_tokens
        self.tokenizer = tokenizer

    def attributes(self) -> tuple[tuple[str, DataType], ...]:
        return ATTRIBUTES

    def write_ir(self, level: "ir.Level", t: "Tracer", attribute_nodes: dict[str, int]) -> None:
        c = level.chunk_text
        c.max_chars, c.overlap = self.max_chars, self.overlap
        c.max_tokens, c.overlap_tokens = self.max_tokens, self.overlap_tokens
        c.tokenizer_ref = -1 if self.tokenizer is None else t.ref(self.tokenizer)
        c.tokenizer = "" if self.tokenizer is None else self.tokenizer.name
        c.chunk_index_node = attribute_nodes["chunk_index"]
        c.start_offset_node = attribute_nodes["start_offset"]
        c.end_offset_node = attribute_nodes["end_offset"]

    @classmethod
    def explain(cls, level: "ir.Level", plan: "ir.Plan") -> str:
        c = level.chunk_text
        size = (f"max_tokens={c.max_tokens}, overlap_tokens={c.overlap_tokens}, tokenizer={c.tokenizer}"
                if c.max_tokens else f"max_chars={c.max_chars}, overlap={c.overlap}")
        return (f"child of {plan.levels[level.parent].flow!r}: one row per chunk of #{level.source_node} "
                f"(chunk_text {size})")

    @classmethod
    def fingerprint(cls, level: "ir.Level", plan: "ir.Plan") -> Any:
        c = level.chunk_text
        if c.max_tokens:
            return {"max_tokens": c.max_tokens, "overlap_tokens": c.overlap_tokens,
                    "tokenizer": plan.objects[c.tokenizer_ref].fingerprint}
        return {"max_chars": c.max_chars, "overlap": c.overlap}

    @classmethod
    def restore(cls, level: "ir.Level", objects: list[Any]) -> LevelOrigin:
        c = level.chunk_text
        tokenizer = objects[c.tokenizer_ref] if c.tokenizer_ref >= 0 else None
        return ChunkText(c.max_chars, c.overlap, c.max_tokens, c.overlap_tokens, tokenizer)

    @classmethod
    def lower(cls, level: "ir.Level", element: "ir.Node", ctx: "Lowering") -> None:
        c = level.chunk_text
        tokenizer = ctx.objects[c.tokenizer_ref].native if c.max_tokens else None
        ctx.run.add_chunk_text(level.parent, level.id, level.source_node, element.id, c.chunk_index_node,
                               c.start_offset_node, c.end_offset_node, c.max_chars, c.overlap, c.max_tokens,
                               c.overlap_tokens, tokenizer)


def _positive(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"chunk_text(): {name} must be a positive int, got {value!r}")
    return value


def _overlap(name: str, value: Any, limit: int, limit_name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"chunk_text(): {name} must be an int >= 0, got {value!r}")
    if value >= limit:
        raise ValueError(f"chunk_text(): {name} ({value}) must be smaller than {limit_name} ({limit})")
    return value


def make_chunk_spec(max_chars: Any = None, overlap: Any = None, max_tokens: Any = None, overlap_tokens: Any = None,
                    tokenizer: Any = None) -> ChunkText:
    from daft_flow.ops.tokenize import resolve_tokenizer

    by_tokens = max_tokens is not None or overlap_tokens is not None or tokenizer is not None
    if by_tokens:
        if max_chars is not None or overlap is not None:
            raise ValueError("chunk_text(): chunk either by characters (max_chars, overlap) or by tokens "
                             "(max_tokens, overlap_tokens, tokenizer), not both")
        limit = _positive("max_tokens", DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens)
        default_overlap = min(DEFAULT_OVERLAP_TOKENS, limit // 8)
        over = _overlap("overlap_tokens", default_overlap if overlap_tokens is None else overlap_tokens, limit,
                        "max_tokens")
        return ChunkText(max_chars=0, overlap=0, max_tokens=limit, overlap_tokens=over,
                         tokenizer=resolve_tokenizer(tokenizer))
    limit = _positive("max_chars", DEFAULT_MAX_CHARS if max_chars is None else max_chars)
    default_overlap = min(DEFAULT_OVERLAP, limit // 5)
    over = _overlap("overlap", default_overlap if overlap is None else overlap, limit, "max_chars")
    return ChunkText(max_chars=limit, overlap=over)
