"""Where a key sits in the tree: the layer function, and the prefix arithmetic of a node.

Why a hash decides the shape. A Merkle Search Tree must have exactly one shape for a given
set of keys, whatever order they arrived in, or two replicas holding the same objects would
disagree about the root CID. A B-tree cannot promise that: its splits depend on history.
The MST removes history from the picture by giving every key a *layer* that depends on the
key alone, and then requiring that a node at layer L holds exactly the keys of layer L in
its key range, with everything between two of them in a subtree at layer L-1. Sorting fixes
the order inside a node, layers fix which node a key lives in, so the tree is a pure
function of its key set.

The layer of a key is the number of leading zero bits of sha256(key), halved and floored:
two zero bits per layer, so a key reaches layer L+1 with probability 1/4 given layer L, and
a node holds on average about four keys (fanout 4, atproto's choice; its older docs say 16
but the code and every fixture use two bits). The expected depth of a tree of n keys is
log4(n) + O(1): ten layers for a million keys. A cryptographic hash matters: nobody can
choose keys that pile up on one layer or make the tree degenerate, short of grinding
hashes, and the layer is the same in every implementation.

Keys are raw bytes compared bytewise (S3 listing order, and the order of UTF-8 atproto keys).
"""

from __future__ import annotations

from hashlib import sha256

# Two zero bits per layer gives a fanout of 2**2 = 4 (atproto's MST).
_ZERO_BITS_PER_LAYER = 2
_DIGEST_BITS = 256


def key_layer(key: bytes) -> int:
    """The layer a key lives on: leading zero bits of sha256(key) // 2."""
    digest = int.from_bytes(sha256(key).digest(), "big")
    return (_DIGEST_BITS - digest.bit_length()) // _ZERO_BITS_PER_LAYER


def common_prefix_length(left: bytes, right: bytes) -> int:
    """How many leading bytes ``left`` and ``right`` share (the ``p`` of a node entry)."""
    limit = len(left) if len(left) < len(right) else len(right)
    # XOR of the two prefixes as big-endian integers: its highest set bit is in the first
    # byte that differs. Linear in C, where a Python loop would cost ~50 ns a byte.
    difference = int.from_bytes(left[:limit], "big") ^ int.from_bytes(right[:limit], "big")
    return limit - (difference.bit_length() + 7) // 8
