"""The fake `double` component: the only one that imports fakeflow.helper."""

from convflow.components.base import EXAMPLES, ComponentError, Context, component

from fakeflow.helper import scale
from fakeflow.steps import Params, read, record, write


@component(
    name="double", inputs={"examples": EXAMPLES}, outputs={"examples": EXAMPLES}, params=Params
)
def double(ctx: Context) -> None:
    record(ctx, "double")
    if ctx.params.fail:
        raise ComponentError("asked to fail")
    if ctx.params.crash:
        raise RuntimeError("a bug\nwith a second line")
    write(ctx, "examples", scale(read(ctx, "examples")) + ctx.params.value - 1)
