"""The inboxd exception tree. Each class docstring is its default message.

InboxdError
 ├── ConfigError
 ├── NotFound
 ├── Forbidden
 ├── InvalidRequest
 │    ├── UnknownJobKind
 │    ├── InvalidParams
 │    ├── InvalidField
 │    ├── InvalidQuery
 │    └── InvalidState
 ├── DatabaseError
 └── TaskError                (raised by tasks; decides retry)
      ├── RetryableError      (transient: retried with backoff, honours retry_after)
      ├── PermanentError      (fails the job at once)
      │    └── DiskFull
      └── JobCancelled        (cooperative cancellation reached a checkpoint)
"""

from __future__ import annotations


class InboxdError(Exception):
    """An inboxd error."""

    code = "error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or self.__class__.__name__).strip())

    @property
    def message(self) -> str:
        """The human-readable message."""
        return str(self.args[0])


class ConfigError(InboxdError):
    """The configuration is invalid."""

    code = "config_error"


class NotFound(InboxdError):
    """No such object."""

    code = "not_found"


class Forbidden(InboxdError):
    """Not allowed for this user."""

    code = "forbidden"


class InvalidRequest(InboxdError):
    """The request is invalid."""

    code = "invalid_request"


class UnknownJobKind(InvalidRequest):
    """No task is registered for this job kind."""

    code = "unknown_kind"


class InvalidParams(InvalidRequest):
    """The job's parameters are invalid."""

    code = "invalid_params"


class InvalidField(InvalidRequest):
    """A field of the request is missing or cannot be used."""

    code = "invalid_field"


class InvalidQuery(InvalidRequest):
    """The search query is malformed."""

    code = "invalid_query"


class InvalidState(InvalidRequest):
    """The object is not in a state that allows this."""

    code = "invalid_state"


class DatabaseError(InboxdError):
    """The database could not be reached or refused the operation."""

    code = "database_error"


class TaskError(InboxdError):
    """A task failed."""

    code = "task_error"


class RetryableError(TaskError):
    """A transient failure; the job will be tried again later."""

    code = "retryable"

    def __init__(self, message: str | None = None, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(TaskError):
    """A failure that retrying cannot fix."""

    code = "permanent"


class DiskFull(PermanentError):
    """No space left on the data directory's disk: free some and retry the job."""

    code = "disk_full"


class JobCancelled(TaskError):
    """The job was cancelled."""

    code = "cancelled"
