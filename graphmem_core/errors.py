"""Exception hierarchy shared by every graphmem component.

Callers catch `GraphmemError` for anything the library raises on purpose. `RetryableError`
marks failures that may succeed when tried again, such as a locked database or a dropped
connection. Every other error is permanent and needs a change of input or configuration.
"""


class GraphmemError(Exception):
    """Root of every error that graphmem raises on purpose."""


class ConfigurationError(GraphmemError):
    """A setting is missing or has an invalid value."""


class InvalidInputError(GraphmemError):
    """An input document or argument cannot be accepted as given."""


class StoreError(GraphmemError):
    """A graph store operation failed."""


class RetryableError(GraphmemError):
    """A transient failure: the same call may succeed when retried."""


class RetryableStoreError(StoreError, RetryableError):
    """A store operation failed for a transient reason, such as a locked database."""


class ConcurrentUpdateError(RetryableStoreError):
    """The content a write was computed from changed before the write, so it must be computed again."""


class ExtractionError(GraphmemError):
    """An extractor could not process some chunks; the message names them and the reasons."""


class StreamError(GraphmemError):
    """Reading from or writing to the message broker failed."""


class BrokerUnavailableError(StreamError, RetryableError):
    """No broker responded within the time limit, so the same call may succeed once the broker is back."""


class MissingOffsetsError(StreamError):
    """Messages a batch names are no longer on the broker, for example deleted by the topic's retention."""
