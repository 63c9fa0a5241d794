"""The fixed-size chunk relay and its hashing pipeline."""

from relay.chunker.buffers import ChunkBuffers
from relay.chunker.checksums import (
    Checksum,
    ChecksumType,
    allowed_types,
    checksum_of,
    combine,
    composite,
    default_type,
)
from relay.chunker.pipeline import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    BodyHasher,
    BodyTooLarge,
    ChunkedBody,
    ChunkerConfig,
    Leaf,
    chunk_into_store,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_CHUNK_SIZE",
    "MIN_CHUNK_SIZE",
    "BodyHasher",
    "BodyTooLarge",
    "Checksum",
    "ChecksumType",
    "ChunkBuffers",
    "ChunkedBody",
    "ChunkerConfig",
    "Leaf",
    "allowed_types",
    "checksum_of",
    "chunk_into_store",
    "combine",
    "composite",
    "default_type",
]
