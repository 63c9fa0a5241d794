"""The engine's own errors. The S3 front door maps each to its S3 error code."""

from __future__ import annotations


class EngineError(Exception):
    """Base of the storage engine's errors."""


class NoSuchBucket(EngineError):
    def __init__(self, bucket: str) -> None:
        super().__init__(f"bucket {bucket!r} does not exist")
        self.bucket = bucket


class BucketAlreadyExists(EngineError):
    """The name is taken; ``owned_by_caller`` says whether the caller already owns it."""

    def __init__(self, bucket: str, *, owned_by_caller: bool) -> None:
        super().__init__(f"bucket {bucket!r} already exists")
        self.bucket = bucket
        self.owned_by_caller = owned_by_caller


class BucketNotEmpty(EngineError):
    def __init__(self, bucket: str) -> None:
        super().__init__(f"bucket {bucket!r} is not empty")
        self.bucket = bucket


class NoSuchKey(EngineError):
    def __init__(self, bucket: str, key: str) -> None:
        super().__init__(f"no key {key!r} in bucket {bucket!r}")
        self.bucket = bucket
        self.key = key


class InvalidKey(EngineError):
    """A key that is empty, longer than 1024 bytes, or not valid UTF-8 text."""


class PreconditionFailed(EngineError):
    """A conditional write lost: the key's current state did not satisfy the condition."""


class InvalidRange(EngineError):
    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable for an object of {size} bytes")
        self.size = size


class CommitAborted(EngineError):
    """A write was not committed because an earlier batch it was built on failed to
    commit; nothing of it is visible and the client may retry."""


class VersionNotRetained(EngineError):
    """A past version of a bucket older than the history retention (and not pinned):
    garbage collection may have deleted its blocks, so it is not read at all."""

    def __init__(self, bucket: str, version: int, retention_seconds: float) -> None:
        super().__init__(
            f"version {version} of bucket {bucket!r} is older than the history retention"
            f" ({retention_seconds:g} s, gc.history_retention_seconds) and is no longer kept"
        )
        self.bucket = bucket
        self.version = version
