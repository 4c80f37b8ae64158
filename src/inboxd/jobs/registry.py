"""Task kinds: name → handler, parameter model and defaults.

Kinds register themselves with the :func:`task` decorator when their module is imported;
:mod:`inboxd.tasks`, above jobs/, imports those modules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, get_args

from pydantic import BaseModel, ValidationError

from inboxd.errors import InvalidParams, UnknownJobKind

if TYPE_CHECKING:
    from inboxd.config import Settings
    from inboxd.jobs.progress import TaskContext

#: A task handler: gets its context and validated params, returns a JSON-ready result.
Handler = Callable[["TaskContext", Any], Any]


@dataclass(frozen=True)
class TaskSpec:
    """How to run one kind of job."""

    kind: str
    handler: Handler
    params_model: type[BaseModel]
    queue: str = "default"
    max_attempts: int | None = None
    description: str = ""
    #: Run once by each worker that serves this kind, when it starts (warm caches, helper
    #: processes), so the first job does not pay for it.
    prepare: Callable[[Settings], None] | None = None

    def validate(self, params: dict[str, Any]) -> dict[str, Any]:
        """Check ``params`` against the model; returns them normalised."""
        try:
            # Strict: params arrive as JSON, and a JSON false is no number of milliseconds.
            model = self.params_model.model_validate(self._integers(params), strict=True)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'params'}: {err['msg']}"
                for err in exc.errors()
            )
            raise InvalidParams(f"invalid params for {self.kind!r}: {problems}") from exc
        return model.model_dump(mode="json")

    def _integers(self, params: dict[str, Any]) -> dict[str, Any]:
        # JSON has one number type: 21.0 is the integer 21 to JSON Schema (the params'
        # schema in the API document), so an integer field takes it.
        fields = self.params_model.model_fields
        out = dict(params)
        for name, value in params.items():
            info = fields.get(name)
            if info is None or type(value) is not float or not value.is_integer():
                continue
            annotation = info.annotation
            if annotation is int or int in get_args(annotation):
                out[name] = int(value)
        return out

    def parse(self, params: dict[str, Any]) -> BaseModel:
        """The params as the task's model instance."""
        return self.params_model.model_validate(params)


class EmptyParams(BaseModel, extra="forbid"):
    """A task that takes no parameters."""


_REGISTRY: dict[str, TaskSpec] = {}


def task(
    kind: str,
    *,
    params: type[BaseModel] = EmptyParams,
    queue: str = "default",
    max_attempts: int | None = None,
    prepare: Callable[[Settings], None] | None = None,
) -> Callable[[Handler], Handler]:
    """Register a handler for a job kind (decorator); ``prepare`` runs when a worker that
    serves it starts."""

    def register(handler: Handler) -> Handler:
        _REGISTRY[kind] = TaskSpec(
            kind=kind,
            handler=handler,
            params_model=params,
            queue=queue,
            max_attempts=max_attempts,
            prepare=prepare,
            description=(handler.__doc__ or "").strip().splitlines()[0] if handler.__doc__ else "",
        )
        return handler

    return register


def get_task(kind: str) -> TaskSpec:
    """The spec of ``kind``; raises UnknownJobKind with the known kinds listed."""
    try:
        return _REGISTRY[kind]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise UnknownJobKind(f"unknown job kind {kind!r} (known kinds: {known})") from None


def all_tasks() -> list[TaskSpec]:
    """Every registered task kind."""
    return sorted(_REGISTRY.values(), key=lambda spec: spec.kind)
