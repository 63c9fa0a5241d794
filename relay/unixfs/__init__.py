"""UnixFS files: dag-pb file nodes, the streaming balanced builder, range → leaf mapping.

Pure code: nothing here does I/O beyond ``file_cid`` reading the file it is given, and
nothing imports trio.
"""

from relay.unixfs.builder import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_WIDTH,
    BuilderStatistics,
    FileBuilder,
    FileHasher,
    FileRoot,
    cid_of_stream,
    file_cid,
)
from relay.unixfs.node import FileNode, Link, MalformedNode, decode_file_node, encode_file_node
from relay.unixfs.ranges import LeafSpan, leaves_for_range

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_WIDTH",
    "BuilderStatistics",
    "FileBuilder",
    "FileHasher",
    "FileNode",
    "FileRoot",
    "LeafSpan",
    "Link",
    "MalformedNode",
    "cid_of_stream",
    "decode_file_node",
    "encode_file_node",
    "file_cid",
    "leaves_for_range",
]
