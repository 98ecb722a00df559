"""The connection registry's sorted indexes: a page costs what the page costs.

Pure: plain Python objects and the standard library. Must never import
asyncio, websockets, sockets or textual, nor any other part of wsconsole.

Every order is over ``(value, id)``: ids are unique (in a cluster too), so the
order is total and a page can resume after the ``(value, id)`` of the last
row it showed (a keyset cursor), whatever was added or removed meanwhile.

Three structures, for three kinds of data:

- :class:`SortedRecords` keeps records in order of a field that never changes
  while a record is registered: the registry uses it for the connection
  time, the default order. It is a list of sorted blocks plus each block's
  last key, the layout of sortedcontainers' ``SortedList``: adding or
  removing a record costs a bisection and moving one block's pointers (an
  append, for a connection that just opened); a page after a cursor costs a
  bisection and the page.
- :class:`Segment` holds up to :data:`SEGMENT_SIZE` records, in id order, and
  their order by each other field (user, path, address, and the live ones:
  traffic counters, last activity, buffer, latency, by the value the sampler
  last copied). The hot path increments the counters without touching any
  index; the sampler visits one segment at a time. An order asked for
  lately is kept up to date in every segment; any other becomes stale where
  something changed and is sorted again when next asked for (a sort of
  each segment, about 0.25 ms per 512 records). A page in one of these
  orders merges the segments' runs from the cursor: a bisection per
  segment, then the page.
- :class:`GroupIndex` groups records by one field (user, path, topic) and
  keeps the groups by size, so that group counts change by one on register,
  unregister and subscribe, and the largest k come out without a scan.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from itertools import chain, islice
from operator import attrgetter
from typing import Any, Callable, Container, Iterable, Iterator

__all__ = [
    "SortedRecords",
    "Segment",
    "SEGMENT_SIZE",
    "BLOCK_SIZE",
    "GroupIndex",
    "SortedNames",
    "order_key",
    "successor",
]

SEGMENT_SIZE = 512
"""Records per segment: one sampler step visits this many, and a page in a
segment order bisects every segment: n / 512 of them."""

BLOCK_SIZE = 512
"""Records per block of a :class:`SortedRecords`, give or take a factor of two."""

_ORDER_KEYS: dict[str, Callable[[Any], tuple[Any, str]]] = {}


def order_key(attribute: str) -> Callable[[Any], tuple[Any, str]]:
    """The ``(value, id)`` key of records ordered by ``attribute``.

    ``attrgetter`` with two names builds the tuple in C: the cheapest key.
    """
    key = _ORDER_KEYS.get(attribute)
    if key is None:
        key = _ORDER_KEYS[attribute] = attrgetter(attribute, "id")
    return key


_by_id = attrgetter("id")


class SortedRecords:
    """Records in ``(attribute, id)`` order, for an attribute that never changes.

    A record's attribute must keep its value from :meth:`add` to
    :meth:`remove`; the registry only indexes fields fixed at the handshake.
    """

    __slots__ = ("attribute", "key", "_blocks", "_maxes", "_len")

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute
        self.key = order_key(attribute)
        self._blocks: list[list[Any]] = []
        # The last key of each block: bisecting it finds the block of a key.
        self._maxes: list[tuple[Any, str]] = []
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Any]:
        return chain.from_iterable(self._blocks)

    def add(self, record: Any) -> None:
        """Insert a record at its place."""
        key = self.key
        k = key(record)
        blocks, maxes = self._blocks, self._maxes
        self._len += 1
        if not blocks:
            blocks.append([record])
            maxes.append(k)
            return
        i = bisect_left(maxes, k)
        if i == len(maxes):
            i -= 1
            block = blocks[i]
            block.append(record)
            maxes[i] = k
        else:
            block = blocks[i]
            insort(block, record, key=key)
        if len(block) > 2 * BLOCK_SIZE:
            self._split(i)

    def remove(self, record: Any) -> None:
        """Take a record out; ValueError if it is not here."""
        key = self.key
        k = key(record)
        blocks, maxes = self._blocks, self._maxes
        i = bisect_left(maxes, k)
        if i < len(blocks):
            block = blocks[i]
            j = bisect_left(block, k, key=key)
            if j < len(block) and block[j] is record:
                self._delete(i, j)
                return
        # Only if the attribute changed while indexed: find it the slow way
        # rather than leave a record that is gone in the index.
        for i, block in enumerate(blocks):
            for j, candidate in enumerate(block):
                if candidate is record:
                    self._delete(i, j)
                    return
        raise ValueError(f"{record!r} is not in the {self.attribute} index")

    def ascending(self, after: tuple[Any, str] | None = None) -> Iterator[Any]:
        """Records in ascending order, from the first one past ``after``."""
        blocks = self._blocks
        if not blocks:
            return iter(())
        if after is None:
            return chain.from_iterable(blocks)
        i = bisect_right(self._maxes, after)
        if i == len(blocks):
            return iter(())
        j = bisect_right(blocks[i], after, key=self.key)
        return chain(islice(blocks[i], j, None),
                     chain.from_iterable(islice(blocks, i + 1, None)))

    def descending(self, before: tuple[Any, str] | None = None) -> Iterator[Any]:
        """Records in descending order, from the first one before ``before``."""
        blocks = self._blocks
        if not blocks:
            return iter(())
        if before is None:
            i = len(blocks) - 1
            j = len(blocks[i])
        else:
            # The first block whose last key is not below ``before``.
            i = bisect_left(self._maxes, before)
            if i == len(blocks):
                i -= 1
                j = len(blocks[i])
            else:
                j = bisect_left(blocks[i], before, key=self.key)
        return chain(reversed(blocks[i][:j]),
                     chain.from_iterable(map(reversed, reversed(blocks[:i]))))

    def rank(self, key: tuple[Any, str]) -> int:
        """How many records sort before ``key``: O(blocks)."""
        i = bisect_left(self._maxes, key)
        if i == len(self._blocks):
            return self._len
        return sum(map(len, islice(self._blocks, i))) + bisect_left(
            self._blocks[i], key, key=self.key)

    def _split(self, i: int) -> None:
        block = self._blocks[i]
        half = len(block) // 2
        self._blocks[i:i + 1] = [block[:half], block[half:]]
        self._maxes[i:i + 1] = [self.key(block[half - 1]), self._maxes[i]]

    def _delete(self, i: int, j: int) -> None:
        blocks, maxes = self._blocks, self._maxes
        block = blocks[i]
        del block[j]
        self._len -= 1
        if not block:
            del blocks[i], maxes[i]
            return
        if j == len(block):
            maxes[i] = self.key(block[-1])
        if len(block) < BLOCK_SIZE // 2 and len(blocks) > 1:
            # Join a small block to a neighbour, so that the number of
            # blocks stays about n / BLOCK_SIZE after a fleet shrinks.
            lo = i if i + 1 < len(blocks) else i - 1
            blocks[lo:lo + 2] = [blocks[lo] + blocks[lo + 1]]
            maxes[lo:lo + 2] = [maxes[lo + 1]]
            if len(blocks[lo]) > 2 * BLOCK_SIZE:
                self._split(lo)


class Segment:
    """Up to :data:`SEGMENT_SIZE` records, and their order by each of several fields.

    ``members`` maps id to record in arrival order, which is about the order
    of the records in memory: the sampler walks it about twice as fast as it
    would walk them in id order. ``by_id`` lists them in id order, always.
    ``runs[attribute]`` lists them by ``(attribute, id)``, unless
    ``attribute`` is in ``stale``. Each change (a record in or out, values
    moved) takes a ``kept`` set: the runs of the orders in it are brought up
    to date at once (the orders someone asked for lately); any other run
    affected becomes stale, to be sorted again when next read (:meth:`run`),
    so that orders nobody reads cost nothing while records come, go and
    count traffic.

    The values of a run that is not stale may change only between
    :meth:`detach` and :meth:`attach` of the record, or just before
    :meth:`moved`: that is what keeps it sorted.
    """

    __slots__ = ("members", "by_id", "runs", "stale", "_keys")

    def __init__(self, attributes: Iterable[str]) -> None:
        self.members: dict[str, Any] = {}
        self.by_id: list[Any] = []
        self.runs: dict[str, list[Any]] = {attribute: [] for attribute in attributes}
        self.stale: set[str] = set(self.runs)
        self._keys = {attribute: order_key(attribute) for attribute in self.runs}

    def __len__(self) -> int:
        return len(self.members)

    def add(self, record: Any, kept: Container[str]) -> None:
        """Take a record in."""
        self.members[record.id] = record
        insort(self.by_id, record, key=_by_id)
        self.attach(record, kept)

    def remove(self, record: Any, kept: Container[str]) -> None:
        """Let a record go."""
        del self.members[record.id]
        _remove(self.by_id, record, _by_id)
        self.detach(record, kept)

    def attach(self, record: Any, kept: Container[str]) -> None:
        """Insert a member into the kept runs (the others become stale)."""
        keys, stale = self._keys, self.stale
        for attribute, run in self.runs.items():
            if attribute in stale:
                continue
            if attribute in kept:
                insort(run, record, key=keys[attribute])
            else:
                stale.add(attribute)

    def detach(self, record: Any, kept: Container[str]) -> None:
        """Take a member out of the kept runs (the others become stale)."""
        keys, stale = self._keys, self.stale
        for attribute, run in self.runs.items():
            if attribute in stale:
                continue
            if attribute in kept:
                _remove(run, record, keys[attribute])
            else:
                stale.add(attribute)

    def moved(self, attribute: str, kept: Container[str]) -> None:
        """Values of ``attribute`` changed: re-sort its run if kept, else let it go stale."""
        if attribute in kept:
            self.resort(attribute)
        else:
            self.stale.add(attribute)

    def run(self, attribute: str) -> list[Any]:
        """The members in ``(attribute, id)`` order, sorted again first if stale."""
        if attribute in self.stale:
            self.resort(attribute)
        return self.runs[attribute]

    def resort(self, attribute: str) -> None:
        """Sort one run again from the members.

        A stable sort of the members in id order by the value alone yields
        ``(value, id)`` order: comparing plain values, without building a
        tuple per record, is about four times cheaper.
        """
        self.runs[attribute] = sorted(self.by_id, key=attrgetter(attribute))
        self.stale.discard(attribute)


def successor(prefix: str) -> str | None:
    """The first string after every string that starts with ``prefix``."""
    while prefix and prefix[-1] == "\U0010ffff":
        prefix = prefix[:-1]
    if not prefix:
        return None
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _remove(run: list[Any], record: Any, key: Callable[[Any], Any]) -> None:
    j = bisect_left(run, key(record), key=key)
    if j < len(run) and run[j] is record:
        del run[j]
        return
    # The value moved without a re-sort (a writer outside the registry):
    # correctness first, then speed.
    for j, candidate in enumerate(run):
        if candidate is record:
            del run[j]
            return
    raise ValueError(f"{record!r} is not in this segment")


_EMPTY: dict[str, Any] = {}


class SortedNames:
    """Distinct strings in order, in blocks of about :data:`BLOCK_SIZE`: adding or
    removing one is a bisection and a move within its block (not within one list
    of every name: 100,000 users would make each new one a move of 400 KB), and
    the names that start with a prefix are a bisection and the range."""

    __slots__ = ("_blocks", "_maxes", "_len")

    def __init__(self) -> None:
        self._blocks: list[list[str]] = []
        self._maxes: list[str] = []
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[str]:
        return chain.from_iterable(self._blocks)

    def add(self, name: str) -> None:
        """Insert a name that is not here."""
        blocks, maxes = self._blocks, self._maxes
        self._len += 1
        if not blocks:
            blocks.append([name])
            maxes.append(name)
            return
        i = bisect_left(maxes, name)
        if i == len(maxes):
            i -= 1
            blocks[i].append(name)
            maxes[i] = name
        else:
            insort(blocks[i], name)
        if len(blocks[i]) > 2 * BLOCK_SIZE:
            block = blocks[i]
            half = len(block) // 2
            blocks[i:i + 1] = [block[:half], block[half:]]
            maxes[i:i + 1] = [block[half - 1], maxes[i]]

    def remove(self, name: str) -> None:
        """Take a name out; ValueError if it is not here."""
        blocks, maxes = self._blocks, self._maxes
        i = bisect_left(maxes, name)
        block = blocks[i] if i < len(blocks) else []
        j = bisect_left(block, name)
        if j == len(block) or block[j] != name:
            raise ValueError(f"{name!r} is not among the names")
        del block[j]
        self._len -= 1
        if not block:
            del blocks[i], maxes[i]
            return
        if j == len(block):
            maxes[i] = block[-1]
        if len(block) < BLOCK_SIZE // 2 and len(blocks) > 1:
            lo = i if i + 1 < len(blocks) else i - 1
            blocks[lo:lo + 2] = [blocks[lo] + blocks[lo + 1]]
            maxes[lo:lo + 2] = [maxes[lo + 1]]

    def starting_with(self, prefix: str) -> list[str]:
        """The names that start with ``prefix``, in order (every name for ``""``)."""
        if not prefix:
            return list(self)
        blocks, maxes = self._blocks, self._maxes
        i = bisect_left(maxes, prefix)
        if i == len(blocks):
            return []
        end = successor(prefix)
        names: list[str] = []
        j = bisect_left(blocks[i], prefix)
        for block in islice(blocks, i, None):
            hi = len(block) if end is None else bisect_left(block, end, j)
            names.extend(block[j:hi])
            if hi < len(block):
                break
            j = 0
        return names


class GroupIndex:
    """Records grouped by one field, and the groups by size.

    ``buckets[value]`` maps id to record (insertion-ordered, O(1) removal);
    a group's count is its bucket's size. The groups are also kept by count,
    with the distinct counts sorted: there are at most about ``sqrt(2n)`` of
    them for ``n`` members, so the largest ``k`` groups cost O(k + that).

    With an ``order`` attribute, the index also knows which buckets are in
    ``(order, id)`` order as inserted (each member's value above the last
    one's): the first records of such a bucket are the first of the group in
    that order, with no sort. A bucket out of order stays so until it empties.
    """

    __slots__ = ("buckets", "_names", "_levels", "_sizes", "_order", "_unordered")

    def __init__(self, order: str | None = None) -> None:
        self.buckets: dict[str, dict[str, Any]] = {}
        # The groups' names, sorted: a pattern bisects its literal prefix here
        # and tests only the names in that range.
        self._names = SortedNames()
        # count -> the groups of that size, in the order they reached it.
        self._levels: dict[int, dict[str, None]] = {}
        self._sizes: list[int] = []
        self._order = attrgetter(order) if order is not None else None
        self._unordered: set[str] = set()

    def __len__(self) -> int:
        return len(self.buckets)

    def bucket(self, value: str) -> dict[str, Any]:
        """The records of one group, by id (empty if there is none); do not modify."""
        return self.buckets.get(value, _EMPTY)

    def count(self, value: str) -> int:
        """Members of one group."""
        return len(self.buckets.get(value, _EMPTY))

    def counts(self) -> dict[str, int]:
        """Every group's count (a copy: O(groups))."""
        return {value: len(bucket) for value, bucket in self.buckets.items()}

    def add(self, value: str, record: Any) -> None:
        """Put a record in a group (its id must not be in it)."""
        bucket = self.buckets.get(value)
        if bucket is None:
            bucket = self.buckets[value] = {}
            self._names.add(value)
        size = len(bucket)
        order = self._order
        if size and order is not None and value not in self._unordered and not (
                order(record) > order(next(reversed(bucket.values())))):
            self._unordered.add(value)
        bucket[record.id] = record
        if size:
            self._leave(value, size)
        self._enter(value, size + 1)

    def discard(self, value: str, id: str) -> None:
        """Take an id out of a group, if it is there; empty groups go."""
        bucket = self.buckets.get(value)
        if bucket is None or id not in bucket:
            return
        size = len(bucket)
        del bucket[id]
        self._leave(value, size)
        if size > 1:
            self._enter(value, size - 1)
        else:
            del self.buckets[value]
            self._names.remove(value)
            self._unordered.discard(value)

    def names(self, prefix: str = "") -> list[str]:
        """The groups whose name starts with ``prefix``, sorted: a bisection
        and the range (every group for ``""``)."""
        return self._names.starting_with(prefix)

    def in_order(self, value: str) -> bool:
        """True if the group's bucket, as inserted, is in ``order`` order."""
        return self._order is not None and value not in self._unordered

    def largest(self, k: int) -> list[tuple[str, int]]:
        """The ``k`` largest groups, by count then name.

        Where the cut falls among groups of equal size, the ones that have
        had that size longest are kept (no sort of a level of 100,000 users
        who each have one connection).
        """
        result: list[tuple[str, int]] = []
        levels = self._levels
        for size in reversed(self._sizes):
            room = k - len(result)
            if room <= 0:
                break
            level = levels[size]
            names = list(level) if len(level) <= room else list(islice(level, room))
            names.sort()
            result.extend((name, size) for name in names)
        return result

    def _enter(self, value: str, size: int) -> None:
        level = self._levels.get(size)
        if level is None:
            level = self._levels[size] = {}
            insort(self._sizes, size)
        level[value] = None

    def _leave(self, value: str, size: int) -> None:
        level = self._levels[size]
        del level[value]
        if not level:
            del self._levels[size]
            del self._sizes[bisect_left(self._sizes, size)]
