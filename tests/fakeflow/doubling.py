"""The fake `double` component: the only one that imports fakeflow.helper."""

import os

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
    # The environment's marker is no param: a sweep interrupted that way resumes the same key.
    hang = ctx.params.hang_marker or os.environ.get("FAKEFLOW_HANG_MARKER", "")
    write(ctx, "examples", scale(read(ctx, "examples")) + ctx.params.value - 1, hang)
