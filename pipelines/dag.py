"""The DAG: steps wired by the artifacts they consume. Checking and wiring, no ML."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from convflow.components.base import Component


class PipelineError(Exception):
    """A pipeline that cannot run as wired (cycle, missing input, type mismatch)."""


@dataclass(frozen=True)
class OutputRef:
    """One output of one step: what a downstream step's input is wired to."""

    step: str
    output: str
    type: str


@dataclass(frozen=True)
class Step:
    name: str
    component: Component
    params: Any
    inputs: Mapping[str, OutputRef] = field(default_factory=dict)
    after: tuple[str, ...] = ()  # steps that must succeed first; they do not join the key

    def depends_on(self) -> set[str]:
        """The steps this one waits for: those it reads from, and its ``after`` steps."""
        return {ref.step for ref in self.inputs.values()} | set(self.after)

    def __getitem__(self, output: str) -> OutputRef:
        if output not in self.component.outputs:
            raise PipelineError(
                f"step {self.name!r} has no output {output!r}; "
                f"it has {sorted(self.component.outputs)}"
            )
        return OutputRef(self.name, output, self.component.outputs[output])


@dataclass
class Pipeline:
    """A named set of steps; their order comes from the wiring, not from insertion.

    ``task`` names the task every step works for (components/tasks: what the targets are,
    the loss, the metrics, the served outputs); the runner hands it to each step.
    """

    name: str
    steps: dict[str, Step] = field(default_factory=dict)
    task: str = "classification"

    def add(
        self,
        component: Component,
        params: Any,
        name: str | None = None,
        after: tuple[str, ...] = (),
        **inputs: OutputRef,
    ):
        """Adds a step; ``inputs`` wire each declared input to an upstream step's output.

        ``after`` names steps that must succeed before this one although it reads nothing
        of theirs (a gate such as validate_data before train); they order the DAG and a
        partial run needs them published, but they do not join this step's cache key.
        """
        name = name or component.name
        if name in self.steps:
            raise PipelineError(f"step {name!r} is added twice")
        if not isinstance(params, component.params_cls):
            raise PipelineError(
                f"step {name!r}: params must be {component.params_cls.__name__}, "
                f"got {type(params).__name__}"
            )
        missing = sorted(set(component.inputs) - set(inputs))
        extra = sorted(set(inputs) - set(component.inputs))
        if missing or extra:
            raise PipelineError(f"step {name!r}: unwired inputs {missing}, unknown inputs {extra}")
        for key, ref in inputs.items():
            if ref.step not in self.steps:
                raise PipelineError(
                    f"step {name!r}: input {key!r} comes from unknown step {ref.step!r}"
                )
            if ref.type != component.inputs[key]:
                raise PipelineError(
                    f"step {name!r}: input {key!r} wants {component.inputs[key]}, got {ref.type} "
                    f"from {ref.step}.{ref.output}"
                )
        for gate in after:
            if gate not in self.steps:
                raise PipelineError(f"step {name!r}: after={gate!r} is not an earlier step")
        step = Step(name, component, params, dict(inputs), tuple(after))
        self.steps[name] = step
        return step

    def upstream(self, name: str) -> set[str]:
        """All steps ``name`` depends on, transitively."""
        seen: set[str] = set()
        todo = list(self.steps[name].depends_on())
        while todo:
            s = todo.pop()
            if s not in seen:
                seen.add(s)
                todo.extend(self.steps[s].depends_on())
        return seen

    def downstream(self, name: str) -> set[str]:
        return {s for s in self.steps if name in self.upstream(s)}

    def order(self) -> list[str]:
        """Topological order (Kahn), ties broken by insertion order for stable output."""
        deps = {n: s.depends_on() for n, s in self.steps.items()}
        done: list[str] = []
        while len(done) < len(deps):
            ready = [n for n in deps if n not in done and deps[n] <= set(done)]
            if not ready:
                raise PipelineError(
                    f"the pipeline has a cycle among {sorted(set(deps) - set(done))}"
                )
            done.append(ready[0])
        return done

    def select(self, from_step: str | None = None, to_step: str | None = None) -> list[str]:
        """The steps a partial run executes, in order.

        ``from_step``: that step and everything downstream of it. ``to_step``: that step and
        everything upstream of it. Both: the steps in between.
        """
        for s in (from_step, to_step):
            if s is not None and s not in self.steps:
                raise PipelineError(f"unknown step {s!r}; steps: {', '.join(self.order())}")
        chosen = set(self.steps)
        if from_step:
            chosen &= {from_step} | self.downstream(from_step)
        if to_step:
            chosen &= {to_step} | self.upstream(to_step)
        if not chosen:
            raise PipelineError(f"--from {from_step} --to {to_step} selects no step")
        return [n for n in self.order() if n in chosen]
