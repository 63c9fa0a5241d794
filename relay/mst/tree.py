"""MST operations: pure functions from a root CID (and a node loader) to results.

Theory of operation. A tree is named by its root CID and never changes; every operation
takes a root and a ``load(cid) -> Node`` callable and returns values (a new root, keys,
changes). ``load`` raises ``MissingBlock(cid)`` for a node it does not have; no operation
catches it or keeps state across calls, so an asynchronous caller can fetch the node and
simply call again (``walk`` resumes with ``start=<last key>, after=True``). The empty tree's
root (``EMPTY_NODE.cid``) is known without loading.

Layers. A node at layer L holds the layer-L keys of its key range; its gaps hold subtrees at
layer L-1 (null when empty, an entry-less node with only ``left`` when they hold only keys
of lower layers). The root is trimmed: it has entries, or it is the empty node.

``apply`` works on drafts: mutable, not-yet-encoded copies of the nodes on the paths the
mutations touch. Mutations are sorted (last write per key wins) and pushed down from the
root: a key whose layer is this node's layer is put or removed here, which splits the gap's
subtree around a new key or merges the two subtrees around a removed one; the other keys go
down into the gap they fall in. Subtrees no mutation reaches stay as CIDs and are never
loaded. Only at the end is the draft tree encoded, bottom-up, so each new node is encoded
once, nothing discarded is ever encoded, and nothing created in the call is ever loaded.
A mutation that changes nothing (a put of the value already there, a delete of an absent
key) leaves its path untouched: an unchanged draft turns back into its original CID.

``build`` is a one-pass bulk loader over sorted items: one open node per layer, a node is
encoded when a key of a higher layer (or the end) closes it, so each node is encoded once.

``diff`` runs two cursors over the trees in key order, each a stack of keys and unexpanded
subtrees. Two subtrees with the same CID at both heads are skipped without loading; else the
higher-layer subtree (or both) is expanded, until keys can be compared.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple, cast

from relay.ipld.cid import CID
from relay.mst.layer import key_layer
from relay.mst.node import EMPTY_NODE, Entry, MalformedNode, Node

Loader = Callable[[CID], Node]

_EMPTY_CID = EMPTY_NODE.cid


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """A new root and the nodes that must be persisted for it (the batch's new nodes)."""

    root: CID
    new_nodes: dict[CID, Node]


class Change(NamedTuple):
    """One key that differs between two trees: ``old`` None = added, ``new`` None = removed."""

    key: bytes
    old: CID | None
    new: CID | None


def _load(cid: CID, load: Loader) -> Node:
    return EMPTY_NODE if cid == _EMPTY_CID else load(cid)


def _root_layer(node: Node, load: Loader) -> int:
    """The layer of a root node; an untrimmed (entry-less) root is one above its child."""
    depth = 0
    while not node.entries:
        if node.left is None:
            return depth  # the empty tree; any layer works
        node = load(node.left)
        depth += 1
    return key_layer(node.entries[0].key) + depth


# -- get ---------------------------------------------------------------------------------


def get(root: CID, key: bytes, load: Loader) -> CID | None:
    """The value stored under ``key``, or None."""
    node = _load(root, load)
    while True:
        keys = node.keys
        index = bisect_left(keys, key)
        if index < len(keys) and keys[index] == key:
            return node.entries[index].value
        subtree = node.left if index == 0 else node.entries[index - 1].right
        if subtree is None:
            return None
        node = load(subtree)


# -- walk --------------------------------------------------------------------------------


def walk(
    root: CID, load: Loader, start: bytes = b"", *, after: bool = False
) -> Iterator[tuple[bytes, CID]]:
    """Yield (key, value) in key order for keys >= ``start`` (> ``start`` if ``after``).

    Subtrees entirely below ``start`` are never loaded: starting anywhere costs one path.
    """
    # The pending work, top of stack next: an Entry (yield it) or a CID (expand it).
    stack: list[Entry | CID] = []
    push = stack.append
    node: Node | None = _load(root, load)
    while node is not None:  # descend along start's path, queueing what lies after it
        keys = node.keys
        entries = node.entries
        index = bisect_left(keys, start)
        for position in range(len(entries) - 1, index - 1, -1):
            entry = entries[position]
            if entry.right is not None:
                push(entry.right)
            push(entry)
        if index < len(keys) and keys[index] == start:
            if after:
                stack.pop()  # the start key itself; its right subtree stays queued
            break  # gap ``index`` holds only keys below start
        subtree = node.left if index == 0 else entries[index - 1].right
        node = None if subtree is None else load(subtree)
    pop = stack.pop
    while stack:
        item = pop()
        if type(item) is Entry:
            yield item.key, item.value
            continue
        assert type(item) is CID
        expanded = load(item)
        for entry in reversed(expanded.entries):
            if entry.right is not None:
                push(entry.right)
            push(entry)
        if expanded.left is not None:
            push(expanded.left)


# -- diff --------------------------------------------------------------------------------


class _Subtree(NamedTuple):
    cid: CID
    layer: int


def _expand(stack: list[Entry | _Subtree], subtree: _Subtree, load: Loader) -> None:
    node = _load(subtree.cid, load)
    below = subtree.layer - 1
    push = stack.append
    for entry in reversed(node.entries):
        if entry.right is not None:
            push(_Subtree(entry.right, below))
        push(entry)
    if node.left is not None:
        push(_Subtree(node.left, below))


def diff(old_root: CID, new_root: CID, load: Loader) -> Iterator[Change]:
    """Yield the keys whose values differ between two trees, in key order."""
    if old_root == new_root:
        return
    old: list[Entry | _Subtree] = []
    new: list[Entry | _Subtree] = []
    if old_root != _EMPTY_CID:
        old.append(_Subtree(old_root, _root_layer(load(old_root), load)))
    if new_root != _EMPTY_CID:
        new.append(_Subtree(new_root, _root_layer(load(new_root), load)))
    while old and new:
        old_head = old[-1]
        new_head = new[-1]
        old_is_key = type(old_head) is Entry
        new_is_key = type(new_head) is Entry
        if old_is_key and new_is_key:
            assert type(old_head) is Entry
            assert type(new_head) is Entry
            if old_head.key == new_head.key:
                old.pop()
                new.pop()
                if old_head.value != new_head.value:
                    yield Change(old_head.key, old_head.value, new_head.value)
            elif old_head.key < new_head.key:
                old.pop()
                yield Change(old_head.key, old_head.value, None)
            else:
                new.pop()
                yield Change(new_head.key, None, new_head.value)
        elif old_is_key:
            assert type(new_head) is _Subtree
            _expand(new, new.pop(), load)  # type: ignore[arg-type]
        elif new_is_key:
            assert type(old_head) is _Subtree
            _expand(old, old.pop(), load)  # type: ignore[arg-type]
        else:
            assert type(old_head) is _Subtree
            assert type(new_head) is _Subtree
            if old_head.cid == new_head.cid:
                old.pop()  # identical subtrees: same keys, same values, never loaded
                new.pop()
            elif old_head.layer > new_head.layer:
                _expand(old, old.pop(), load)  # type: ignore[arg-type]
            elif new_head.layer > old_head.layer:
                _expand(new, new.pop(), load)  # type: ignore[arg-type]
            else:
                _expand(old, old.pop(), load)  # type: ignore[arg-type]
                _expand(new, new.pop(), load)  # type: ignore[arg-type]
    for remaining, removed in ((old, True), (new, False)):
        while remaining:
            head = remaining.pop()
            if type(head) is Entry:
                if removed:
                    yield Change(head.key, head.value, None)
                else:
                    yield Change(head.key, None, head.value)
            else:
                assert type(head) is _Subtree
                _expand(remaining, head, load)


# -- apply -------------------------------------------------------------------------------


class _Draft:
    """A node under construction: ``subtrees`` has one more slot than ``keys``."""

    __slots__ = ("keys", "subtrees", "values")

    def __init__(self, keys: list[bytes], values: list[CID], subtrees: list[_Subtreeish]) -> None:
        self.keys = keys
        self.values = values
        self.subtrees = subtrees


_Subtreeish = CID | _Draft | None


def _draft_of(subtree: CID | _Draft, layer: int, load: Loader) -> _Draft:
    """A draft to edit: drafts are this call's own, loaded nodes are copied."""
    if type(subtree) is _Draft:
        return subtree
    assert type(subtree) is CID
    node = _load(subtree, load)
    entries = node.entries
    if entries and key_layer(entries[0].key) != layer:
        raise MalformedNode(f"node {subtree} is not at layer {layer}, where the tree puts it")
    subtrees: list[_Subtreeish] = [node.left]
    subtrees.extend([entry.right for entry in entries])
    return _Draft(list(node.keys), [entry.value for entry in entries], subtrees)


def _split(
    subtree: _Subtreeish, layer: int, key: bytes, load: Loader
) -> tuple[_Subtreeish, _Subtreeish]:
    """Split a subtree into the parts below and above ``key`` (which it does not hold)."""
    if subtree is None:
        return None, None
    draft = _draft_of(subtree, layer, load)
    gap = bisect_left(draft.keys, key)
    below, above = _split(draft.subtrees[gap], layer - 1, key, load)
    left = _Draft(draft.keys[:gap], draft.values[:gap], [*draft.subtrees[:gap], below])
    right = _Draft(draft.keys[gap:], draft.values[gap:], [above, *draft.subtrees[gap + 1 :]])
    return _trimmed(left), _trimmed(right)


def _trimmed(draft: _Draft) -> _Subtreeish:
    """An empty draft is no subtree at all (an entry-less draft with a child stays)."""
    if not draft.keys and draft.subtrees[0] is None:
        return None
    return draft


def _merge(left: _Subtreeish, right: _Subtreeish, layer: int, load: Loader) -> _Subtreeish:
    """Join two adjacent subtrees of one layer (all of ``left`` below all of ``right``)."""
    if left is None:
        return right
    if right is None:
        return left
    low = _draft_of(left, layer, load)
    high = _draft_of(right, layer, load)
    seam = _merge(low.subtrees[-1], high.subtrees[0], layer - 1, load)
    return _Draft(
        low.keys + high.keys,
        low.values + high.values,
        [*low.subtrees[:-1], seam, *high.subtrees[1:]],
    )


def _apply_to(
    subtree: _Subtreeish,
    layer: int,
    mutations: list[tuple[bytes, CID | None, int]],
    load: Loader,
) -> _Subtreeish:
    """Apply sorted (key, value-or-None, key layer) mutations, each layer <= ``layer``."""
    if subtree is None:
        if all(value is None for _, value, _ in mutations):
            return None  # deleting from nothing
        draft = _Draft([], [], [None])
    else:
        draft = _draft_of(subtree, layer, load)
    keys = draft.keys
    values = draft.values
    subtrees = draft.subtrees
    changed = False
    lower: list[tuple[bytes, CID | None, int]] = []
    for mutation in mutations:
        key, value, key_level = mutation
        if key_level != layer:
            lower.append(mutation)
            continue
        index = bisect_left(keys, key)
        present = index < len(keys) and keys[index] == key
        if value is None:
            if present:
                del keys[index]
                del values[index]
                subtrees[index : index + 2] = [
                    _merge(subtrees[index], subtrees[index + 1], layer - 1, load)
                ]
                changed = True
        elif present:
            if values[index] != value:
                values[index] = value
                changed = True
        else:
            keys.insert(index, key)
            values.insert(index, value)
            subtrees[index : index + 1] = _split(subtrees[index], layer - 1, key, load)
            changed = True
    # The rest go down into the gaps they fall in; sorted keys visit gaps in order.
    start = 0
    while start < len(lower):
        gap = bisect_left(keys, lower[start][0])
        end = start + 1
        bound = keys[gap] if gap < len(keys) else None
        while end < len(lower) and (bound is None or lower[end][0] < bound):
            end += 1
        child = subtrees[gap]
        updated = _apply_to(child, layer - 1, lower[start:end], load)
        if updated is not child or type(updated) is _Draft:
            subtrees[gap] = updated
            changed = True
        start = end
    if not changed:
        return subtree
    if not keys and subtrees[0] is None:
        return None
    return draft


def _entries(keys: list[bytes], values: list[CID], rights: list[CID | None]) -> tuple[Entry, ...]:
    # tuple.__new__ builds each Entry in C; Entry(...) goes through a Python-level __new__.
    return tuple([_new_tuple(Entry, fields) for fields in zip(keys, values, rights, strict=True)])


_new_tuple = tuple.__new__


def _encode_drafts(
    subtree: _Subtreeish, new_nodes: dict[CID, Node], loaded: set[CID]
) -> CID | None:
    if type(subtree) is not _Draft:
        return subtree  # type: ignore[return-value]
    slots = cast(
        list[CID | None],
        [
            _encode_drafts(child, new_nodes, loaded) if type(child) is _Draft else child
            for child in subtree.subtrees
        ],
    )
    node = Node(slots[0], _entries(subtree.keys, subtree.values, slots[1:]))
    cid = node.cid
    # A draft can come out equal to a node it was cut from (delete k, put k' in the same
    # gap: merge then split restores both sides); that node exists already.
    if cid not in loaded:
        new_nodes[cid] = node
    return cid


def _finish(
    subtree: _Subtreeish, load: Loader, new_nodes: dict[CID, Node], loaded: set[CID]
) -> CID:
    """Trim the top (entry-less roots give way to their child) and encode the drafts."""
    while subtree is not None:
        if type(subtree) is _Draft:
            if subtree.keys:
                break
            subtree = subtree.subtrees[0]
        else:
            assert type(subtree) is CID
            node = _load(subtree, load)
            if node.entries or node.left is None:
                break
            subtree = node.left
    if subtree is None:
        new_nodes[_EMPTY_CID] = EMPTY_NODE
        return _EMPTY_CID
    root = _encode_drafts(subtree, new_nodes, loaded)
    assert root is not None
    return root


def apply(root: CID, mutations: Iterable[tuple[bytes, CID | None]], load: Loader) -> ApplyResult:
    """Put (value) or delete (None) keys; the last mutation of a key wins.

    Returns the new root and exactly the nodes reachable from it that this call created.
    Only the paths the mutations touch are loaded and re-encoded.
    """
    latest = dict(mutations)
    if not latest:
        return ApplyResult(root, {})
    loaded: set[CID] = set()

    fetch = load

    def load_and_remember(cid: CID) -> Node:
        node = fetch(cid)
        loaded.add(cid)
        return node

    load = load_and_remember
    root_node = _load(root, load)
    root_layer = _root_layer(root_node, load)
    batch = sorted((key, value, key_layer(key)) for key, value in latest.items())
    top = max([root_layer] + [level for _, value, level in batch if value is not None])
    # Deleting a key above the root's layer is a no-op: the tree cannot hold it.
    batch = [mutation for mutation in batch if mutation[2] <= top]
    start: _Subtreeish = None if root == _EMPTY_CID else root
    for _ in range(root_layer, top):
        start = _Draft([], [], [start])  # new layers above the old root
    updated = _apply_to(start, top, batch, load)
    if updated is root:
        return ApplyResult(root, {})
    new_nodes: dict[CID, Node] = {}
    new_root = _finish(updated, load, new_nodes, loaded)
    if new_root == root:
        new_nodes.clear()
    return ApplyResult(new_root, new_nodes)


# -- build -------------------------------------------------------------------------------


def build(items: Iterable[tuple[bytes, CID]]) -> ApplyResult:
    """Bulk-build a tree from items sorted by key (no duplicates); each node encoded once.

    The root equals ``apply`` of the same items to the empty tree.
    """
    new_nodes: dict[CID, Node] = {}
    # open_nodes[layer] = (keys, values, subtrees) of the node being filled at that layer;
    # its last subtree slot is filled when the layer below is closed.
    open_keys: list[list[bytes]] = []
    open_values: list[list[CID]] = []
    open_subtrees: list[list[CID | None]] = []

    def close(layer: int) -> CID | None:
        """Close the open nodes of layers 0..layer; return the one at ``layer``."""
        below: CID | None = None
        for level in range(layer + 1):
            keys = open_keys[level]
            subtrees = open_subtrees[level]
            subtrees[-1] = below
            if not keys and below is None:
                continue
            node = Node(subtrees[0], _entries(keys, open_values[level], subtrees[1:]))
            below = node.cid
            new_nodes[below] = node
            open_keys[level] = []
            open_values[level] = []
            open_subtrees[level] = [None]
        return below

    previous: bytes | None = None
    for key, value in items:
        if previous is not None and key <= previous:
            raise ValueError(f"build needs sorted, distinct keys: {key!r} after {previous!r}")
        previous = key
        level = key_layer(key)
        while len(open_keys) <= level:
            open_keys.append([])
            open_values.append([])
            open_subtrees.append([None])
        if level:
            open_subtrees[level][-1] = close(level - 1)
        open_keys[level].append(key)
        open_values[level].append(value)
        open_subtrees[level].append(None)
    if not open_keys:
        return ApplyResult(_EMPTY_CID, {_EMPTY_CID: EMPTY_NODE})
    root = close(len(open_keys) - 1)
    assert root is not None  # the top layer holds at least one key
    return ApplyResult(root, new_nodes)
