"""render_template: a prompt template rendered per row, ``literals[0] + args[0] + literals[1] +
...``, natively (``llm::TemplateRenderer``: ancestors' values are read in place, a 1 MB parent
document is copied only into the prompt itself). Built by prompt() / embed_text()."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daft_flow.ops.registry import Expr, register
from daft_flow.types import DataType

if TYPE_CHECKING:
    from daft_flow.execution.physical import Lowering
    from daft_flow.plan import flow_pb2 as ir
    from daft_flow.plan.trace import Tracer


@register
class RenderTemplate(Expr):
    """``literals[0] + args[0] + literals[1] + ...`` per row."""

    kind = "render_template"

    def __init__(self, literals: list[str], args: tuple[Expr, ...]) -> None:
        if len(literals) != len(args) + 1:
            raise ValueError(f"a template with {len(args)} field(s) needs {len(args) + 1} literal parts, "
                             f"got {len(literals)}")
        self.literals = list(literals)
        self.args = args
        self.dtype = DataType("str")

    def label(self) -> str:
        return "a prompt template"

    def inputs(self) -> tuple[Expr, ...]:
        return self.args

    def write_ir(self, node: "ir.Node", t: "Tracer") -> None:
        node.render_template.literals.extend(self.literals)

    @classmethod
    def explain(cls, node: "ir.Node", plan: "ir.Plan") -> str:
        literals = node.render_template.literals
        return f"render_template[{sum(len(x) for x in literals)} literal chars, {len(literals) - 1} fields]"

    @classmethod
    def fingerprint(cls, node: "ir.Node", plan: "ir.Plan") -> Any:
        return {"literals": list(node.render_template.literals)}

    @classmethod
    def restore(cls, node: "ir.Node", args: list[Expr], objects: list[Any]) -> Expr:
        return RenderTemplate(list(node.render_template.literals), tuple(args))

    @classmethod
    def lower(cls, node: "ir.Node", ctx: "Lowering") -> None:
        ctx.run.add_render_template(node.level, node.id, list(node.render_template.literals),
                                    [(i, ctx.plan.nodes[i].level) for i in node.inputs])
