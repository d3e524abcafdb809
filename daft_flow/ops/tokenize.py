"""tokenize: token ids (``list[int]``) of a text field with a WordPiece tokenizer, natively
(``text::TokenizeOperator``). The tokenizer is the loaded ``dflow.Tokenizer`` object: what was
loaded is what runs (and travels, by content), whatever happens to its file later."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from daft_flow.forksafe import ForkSafeLock
from daft_flow.ops.registry import Expr, register
from daft_flow.types import DataType

if TYPE_CHECKING:
    from daft_flow.execution.physical import Lowering
    from daft_flow.plan import flow_pb2 as ir
    from daft_flow.plan.trace import Tracer
    from daft_flow.text.tokenizer import Tokenizer

_by_path: dict[tuple[str, int, int], "Tokenizer"] = {}
_by_path_lock = ForkSafeLock()


def resolve_tokenizer(tokenizer: Any) -> "Tokenizer":
    """A ``dflow.Tokenizer``, a path to tokenizer.json / vocab.txt (loaded now: a bad file fails
    when the op is built), or None (the default model's)."""
    from daft_flow.text.tokenizer import Tokenizer

    if tokenizer is None:
        return Tokenizer.default()
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    if isinstance(tokenizer, (str, os.PathLike)):
        path = os.fspath(tokenizer)
        try:
            st = os.stat(path)
            key: tuple[str, int, int] | None = (os.path.abspath(path), st.st_mtime_ns, st.st_size)
        except OSError:
            key = None  # from_file names the path in its error
        with _by_path_lock:
            if key is not None and key in _by_path:
                return _by_path[key]
        loaded = Tokenizer.from_file(path)
        if key is not None:
            with _by_path_lock:
                _by_path[key] = loaded
        return loaded
    raise TypeError(f"tokenizer must be a dflow.Tokenizer or a path to tokenizer.json/vocab.txt, "
                    f"got {type(tokenizer).__name__}")


@register
class Tokenize(Expr):
    kind = "tokenize"

    def __init__(self, arg: Expr, tokenizer: "Tokenizer", add_special_tokens: bool) -> None:
        self.arg = arg
        self.tokenizer = tokenizer
        self.add_special_tokens = add_special_tokens
        self.dtype = DataType.list_of(DataType("int"))

    def label(self) -> str:
        return "tokenize"

    def inputs(self) -> tuple[Expr, ...]:
        return (self.arg,)

    def write_ir(self, node: "ir.Node", t: "Tracer") -> None:
        node.tokenize.tokenizer = self.tokenizer.name
        node.tokenize.add_special_tokens = self.add_special_tokens
        node.tokenize.tokenizer_ref = t.ref(self.tokenizer)

    @classmethod
    def explain(cls, node: "ir.Node", plan: "ir.Plan") -> str:
        return f"tokenize[{node.tokenize.tokenizer}, special={node.tokenize.add_special_tokens}]"

    @classmethod
    def fingerprint(cls, node: "ir.Node", plan: "ir.Plan") -> Any:
        return {"tokenizer": plan.objects[node.tokenize.tokenizer_ref].fingerprint,
                "add_special_tokens": node.tokenize.add_special_tokens}

    @classmethod
    def restore(cls, node: "ir.Node", args: list[Expr], objects: list[Any]) -> Expr:
        return Tokenize(args[0], objects[node.tokenize.tokenizer_ref], node.tokenize.add_special_tokens)

    @classmethod
    def lower(cls, node: "ir.Node", ctx: "Lowering") -> None:
        src = ctx.plan.nodes[node.inputs[0]]
        ctx.run.add_tokenize(node.level, src.id, src.level, node.id, ctx.objects[node.tokenize.tokenizer_ref].native,
                             node.tokenize.add_special_tokens)
