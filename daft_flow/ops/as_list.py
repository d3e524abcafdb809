"""as_list: any iterable value as a list of the element type a flat_map needs (flat_map's input
when the value's type is not already such a list). Runs in Python (``AsListRunner``)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daft_flow.ops.registry import Expr, register
from daft_flow.types import DataType

if TYPE_CHECKING:
    from daft_flow.execution.physical import Lowering
    from daft_flow.plan import flow_pb2 as ir


@register
class AsList(Expr):
    """Any iterable value as a list with elements of ``element`` type (flat_map's input)."""

    kind = "as_list"

    def __init__(self, arg: Expr, element: DataType) -> None:
        self.arg = arg
        self.dtype = DataType.list_of(element)

    def label(self) -> str:
        return "as_list"

    def inputs(self) -> tuple[Expr, ...]:
        return (self.arg,)

    @classmethod
    def restore(cls, node: "ir.Node", args: list[Expr], objects: list[Any]) -> Expr:
        from daft_flow.plan.trace import dtype_from_ir

        element = dtype_from_ir(node.type).element
        assert element is not None
        return AsList(args[0], element)

    @classmethod
    def lower(cls, node: "ir.Node", ctx: "Lowering") -> None:
        from daft_flow.execution.python_runners import AsListRunner

        name = "flat_map"
        # Any input may fan out to any number of children: the source starts with one-row batches
        # and the runtime probes row footprints (expanding), so the memory budget holds for the
        # child level too.
        if hasattr(ctx.source, "expect_fan_out"):
            ctx.source.expect_fan_out()
        ctx.run.add_python_batch(ctx.op_info(node, name), AsListRunner(name, ctx.arg_types(node)[0], ctx.out_type(node)),
                                 1, True)
