"""The eviction heuristic's address bookkeeping (free_ranges.py): free gaps beside live tensors,
since when each byte has been free (later frees win, one freed range coalesces), and the
soonest-freed address for a tensor. Hand-checked cases, then random frees and queries against the
plain list scan evict.py used before (every freed range kept, every candidate scanned)."""

from __future__ import annotations

import math
import random

from pimc.mapping.evict import _Block, _Memory
from pimc.mapping.free_ranges import FreedRanges, free_gaps
from pimc.mapping.list_scheduler import lowest_gap

NEVER = -math.inf


def test_free_gaps_lie_between_taken_ranges_below_the_capacity():
    taken = [(10, 20), (20, 30), (50, 60)]
    assert list(free_gaps(taken, 10, 100)) == [(0, 10), (30, 50), (60, 100)]
    assert list(free_gaps(taken, 25, 100)) == [(60, 100)]
    assert list(free_gaps(taken, 10, 55)) == [(0, 10), (30, 50)]  # the last gap is cut at the capacity
    assert list(free_gaps(taken, 45, 100)) == []
    assert list(free_gaps([(0, 40), (10, 20)], 10, 50)) == [(40, 50)]  # a range inside another


def test_the_lowest_gap_of_an_unbounded_memory():
    assert lowest_gap([(0, 10), (12, 20)], 2) == 10
    assert lowest_gap([(0, 10), (12, 20)], 3) == 20
    assert lowest_gap([], 5) == 0


def test_a_range_of_no_bytes_splits_a_gap():
    assert list(free_gaps([(5, 5)], 3, 20)) == [(0, 5), (5, 20)]
    assert list(free_gaps([(5, 5)], 10, 20)) == [(5, 20)]


def test_a_byte_is_free_from_the_latest_time_a_range_covering_it_was_freed():
    f = FreedRanges()
    assert f.free_from(0, 10) == 0.0  # never freed
    f.free(0, 10, 5.0)
    f.free(10, 10, 2.0)
    assert f.pieces() == [(0, 5.0), (10, 2.0), (20, NEVER)]
    assert f.free_from(0, 10) == 5.0
    assert f.free_from(5, 10) == 5.0  # straddles both: the later
    assert f.free_from(10, 10) == 2.0
    assert f.free_from(15, 10) == 2.0  # half never freed: the freed half decides
    assert f.free_from(20, 5) == 0.0
    f.free(0, 10, 1.0)  # freed again earlier: byte keeps 5.0
    assert f.free_from(0, 10) == 5.0
    f.free(5, 10, 7.0)
    assert f.pieces() == [(0, 5.0), (5, 7.0), (15, 2.0), (20, NEVER)]


def test_pieces_of_one_freed_range_coalesce():
    f = FreedRanges()
    f.free(0, 10, 1.0)
    f.free(10, 10, 1.5)
    f.free(30, 10, 1.0)
    f.free(0, 20, 4.0)  # covers the first two: one piece again
    assert f.pieces() == [(0, 4.0), (20, NEVER), (30, 1.0), (40, NEVER)]
    f.free(5, 5, 3.0)  # earlier than what it lands on: cut, unchanged, merged back
    assert f.pieces() == [(0, 4.0), (20, NEVER), (30, 1.0), (40, NEVER)]


def test_equal_times_keep_the_first_range_freed():
    """A scan of the freed ranges in order returns the first of equal maxima: 3 (int) before 3.0."""
    f = FreedRanges()
    f.free(0, 10, 3)
    f.free(0, 10, 3.0)
    assert type(f.free_from(0, 10)) is int


def test_soonest_picks_the_range_freed_first_and_the_lowest_of_ties():
    f = FreedRanges()
    f.free(0, 40, 5.0)
    f.free(40, 20, 1.0)
    f.free(60, 40, 3.0)
    assert f.candidates(0, 100, 20) == [0, 40, 60]  # the gap's start and the freed ends where 20 bytes fit
    assert f.soonest(iter([(0, 100)]), 20) == 40  # [40, 60) freed at 1.0
    assert f.soonest(iter([(0, 100)]), 30) == 40  # [40, 70) and [60, 90) both 3.0: the lower
    assert f.soonest(iter([(0, 100)]), 50) == 40  # [40, 90): 3.0, [0, 50): 5.0
    assert f.soonest(iter([(0, 30), (70, 100)]), 30) == 70  # only gap starts fit: 5.0 against 3.0
    assert f.soonest(iter([]), 10) is None
    assert FreedRanges().soonest(iter([(8, 20), (30, 50)]), 5) == 8  # nothing freed: the lowest


def test_memory_allocates_beside_live_tensors_at_the_soonest_freed_range():
    mem = _Memory("spm", 100)
    assert mem.hole(30) == 0
    mem.live["a"] = _Block("a", 0, 30, 0.0, 1.0, 4.0, 0)
    mem.live["b"] = _Block("b", 30, 30, 0.0, 1.0, 2.0, 0)
    assert mem.hole(30) == 60
    assert mem.hole(50) is None
    for t in ("a", "b"):  # freed as evict._Run._close does
        b = mem.live.pop(t)
        mem.free(b.offset, b.size, b.last)
    assert mem.hole(30) == 60  # never used: free from 0.0
    assert mem.free_from(30, 30) == 2.0
    mem.live["c"] = _Block("c", 60, 40, 0.0, 1.0, 9.0, 0)
    assert mem.hole(30) == 30  # freed at 2.0, [0, 30) at 4.0
    assert mem.hole(40) == 0  # [0, 40) frees at 4.0, [30, 60) is too short beside c
    assert mem.hole(30, lowest=True) == 0
    assert mem.packs([60]) and not mem.packs([30, 40])  # 30 at 0, then 40 finds no room below 60


def _reference_free_from(freed, off, size):
    return max((t for o, n, t in freed if o < off + size and off < o + n), default=0.0)


def _reference_soonest(freed, live, size, capacity):
    cands = sorted({0, *(hi for _, hi in live), *(o + n for o, n, _ in freed)})
    best = None
    for off in cands:
        if off + size > capacity or any(lo < off + size and off < hi for lo, hi in live):
            continue
        free = _reference_free_from(freed, off, size)
        if best is None or free < best[0]:
            best = (free, off)
    return None if best is None else best[1]


def test_random_frees_and_queries_match_the_list_scan():
    r = random.Random(7)
    for _ in range(30):
        capacity = r.choice((64, 100, 256))
        f, freed = FreedRanges(), []
        for step in range(60):
            off, size = r.randrange(capacity), r.randint(1, capacity // 3)
            at = r.choice((r.randint(0, 20), float(r.randint(0, 20)), r.random() * 20))
            f.free(off, size, at)
            freed.append((off, size, at))
            q_off, q_size = r.randrange(capacity), r.randint(1, capacity)
            got, want = f.free_from(q_off, q_size), _reference_free_from(freed, q_off, q_size)
            assert got == want and type(got) is type(want)
            live = sorted({(o, o + n) for o, n in ((r.randrange(capacity), r.randint(1, 16)) for _ in range(r.randint(0, 4)))})
            live = [iv for i, iv in enumerate(live) if all(iv[0] >= hi or iv[1] <= lo for lo, hi in live[:i])]
            want_size = r.randint(1, capacity // 2)
            assert f.soonest(free_gaps(live, want_size, capacity), want_size) == \
                _reference_soonest(freed, live, want_size, capacity), (step, live, want_size)
