"""The fixed-size chunk relay and its hashing pipeline."""

from relay.chunker.buffers import ChunkBuffers
from relay.chunker.pipeline import (
    DEFAULT_CHUNK_SIZE,
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    BodyHasher,
    BodyTooLarge,
    Checksum,
    ChunkedBody,
    ChunkerConfig,
    Leaf,
    checksum_of,
    chunk_into_store,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_CHUNK_SIZE",
    "MIN_CHUNK_SIZE",
    "BodyHasher",
    "BodyTooLarge",
    "Checksum",
    "ChunkBuffers",
    "ChunkedBody",
    "ChunkerConfig",
    "Leaf",
    "checksum_of",
    "chunk_into_store",
]
