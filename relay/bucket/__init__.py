"""The storage engine: buckets of content-addressed objects, knowing no HTTP or S3.

This is the engine's face: the S3 front door, the server and the CLI import what they
use from here, not from its modules. ``Engine`` (``engine.py``) writes and reads objects;
``BucketHeads`` (``heads.py``) knows each bucket's committed root, fresh across
processes, and runs its writer; each bucket's ``BucketWriter`` (``writer.py``) commits
by pipelined group commit (rebasing when another process committed first); ``Listing``
(``listing.py``) pages through a bucket and reads the next page ahead; ``ObjectReads``
(``reader.py``) plans a byte range and streams verified chunks;
``Multipart`` (``multipart.py``) stitches uploads of parts; ``export_bucket`` writes a
bucket as a CAR; ``collect_garbage`` (``gc.py``) deletes what the root set (``roots.py``)
does not reach, and ``check_store`` (``fsck.py``) reads back everything it does. Errors
are ``EngineError``s (``errors.py``, and multipart's own), which each caller converts to
its own (the S3 layer in ``relay.s3.errors``).
"""

from relay.bucket import errors
from relay.bucket.engine import (
    Engine,
    EngineConfig,
    EngineStatistics,
    ListPage,
    key_bytes,
    open_engine,
)
from relay.bucket.errors import (
    BucketAlreadyExists,
    BucketNotEmpty,
    CommitAborted,
    EngineError,
    InvalidKey,
    InvalidRange,
    NoSuchBucket,
    NoSuchKey,
    PreconditionFailed,
    VersionNotRetained,
)
from relay.bucket.export import ExportSummary, export_bucket
from relay.bucket.fsck import FsckReport, check_store
from relay.bucket.gc import GcConfig, GcProgress, GcReport, collect_garbage, serve_gc
from relay.bucket.listing import Page, resume_after
from relay.bucket.manifest import DEFAULT_CONTENT_TYPE, Manifest, ObjectSummary
from relay.bucket.multipart import (
    MAX_PART_BYTES,
    MAX_PARTS,
    MIN_PART_BYTES,
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    Multipart,
    NoSuchUpload,
    Part,
    Upload,
    UploadRequest,
)
from relay.bucket.reader import ObjectStream, ReadPlan, resolve_range
from relay.bucket.retention import is_retained, retention_cutoff_ms
from relay.bucket.walk import Problem
from relay.bucket.writer import Precondition, Update

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "MAX_PARTS",
    "MAX_PART_BYTES",
    "MIN_PART_BYTES",
    "BucketAlreadyExists",
    "BucketNotEmpty",
    "CommitAborted",
    "Engine",
    "EngineConfig",
    "EngineError",
    "EngineStatistics",
    "EntityTooSmall",
    "ExportSummary",
    "FsckReport",
    "GcConfig",
    "GcProgress",
    "GcReport",
    "InvalidKey",
    "InvalidPart",
    "InvalidPartOrder",
    "InvalidRange",
    "ListPage",
    "Manifest",
    "Multipart",
    "NoSuchBucket",
    "NoSuchKey",
    "NoSuchUpload",
    "ObjectStream",
    "ObjectSummary",
    "Page",
    "Part",
    "Precondition",
    "PreconditionFailed",
    "Problem",
    "ReadPlan",
    "Update",
    "Upload",
    "UploadRequest",
    "VersionNotRetained",
    "check_store",
    "collect_garbage",
    "errors",
    "export_bucket",
    "is_retained",
    "key_bytes",
    "open_engine",
    "resolve_range",
    "resume_after",
    "retention_cutoff_ms",
    "serve_gc",
]
