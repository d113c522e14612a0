"""Deterministic, class-stratified, group-aware train/val/test assignment.

Groups are what must never straddle splits: all frames of one video, all images holding one
track, exact duplicate images, near-duplicate groups found by image embeddings. Groups are ordered by a hash of (seed, their content key) inside
strata keyed by their rarest class, and each group goes to the split furthest below its target
share in that stratum. The same seed and the same registry content give the same split, whatever
the row ids are.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dsgen_core.errors import DsgenError

SPLIT_NAMES = ("train", "val", "test")


def parse_split_config(text: str | Mapping[str, float] | None) -> dict[str, float]:
    """``train=0.8,val=0.1,test=0.1`` (or a mapping) to ratios that add up to 1."""
    if text is None or text == "":
        return {"train": 0.8, "val": 0.1, "test": 0.1}
    items: dict[str, float] = {}
    if isinstance(text, Mapping):
        items = {str(k): float(v) for k, v in text.items()}
    else:
        for part in text.split(","):
            name, _, value = part.partition("=")
            try:
                items[name.strip()] = float(value)
            except ValueError:
                raise DsgenError(f"split {part!r}: expected NAME=RATIO such as train=0.8") from None
    unknown = set(items) - set(SPLIT_NAMES)
    if unknown:
        raise DsgenError(f"unknown split name(s) {sorted(unknown)}; use {', '.join(SPLIT_NAMES)}")
    if any(v < 0 for v in items.values()) or sum(items.values()) <= 0:
        raise DsgenError(f"split ratios must be >= 0 and not all zero, got {items}")
    total = sum(items.values())
    if abs(total - 1) > 1e-6:
        raise DsgenError(f"split ratios must add up to 1, got {total:g} ({items})")
    return {k: items.get(k, 0.0) for k in SPLIT_NAMES if items.get(k, 0.0) > 0 or k == "train"}


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass(frozen=True)
class SplitAssignment:
    split_of: dict[int, str]  # asset id -> split
    groups: int


def assign_splits(
    assets: Mapping[int, str],
    classes_of: Mapping[int, Iterable[str]],
    linked: Iterable[Iterable[int]],
    ratios: Mapping[str, float],
    seed: int,
    fixed: Mapping[int, str] | None = None,
) -> SplitAssignment:
    """Assign every asset to a split.

    ``assets`` maps asset id to a content key (sha256, or file name when the file was not read);
    ``classes_of`` the class keys present on each asset; ``linked`` lists sets of assets that must
    share a split (a video, a track). Assets with the same content key are linked too.

    ``fixed`` (asset id -> split) are assets that keep the split an earlier version gave them; the
    new members of their group join them (the lowest-id fixed member's split), and they count
    toward the ratios, so the other groups fill what is left of each share.
    """
    uf = UnionFind()
    by_key: dict[str, int] = {}
    for aid, key in assets.items():
        first = by_key.setdefault(key, aid)
        if first != aid:
            uf.union(first, aid)
    for group in linked:
        members = [a for a in group if a in assets]
        for a in members[1:]:
            uf.union(members[0], a)

    groups: dict[int, list[int]] = defaultdict(list)
    for aid in assets:
        groups[uf.find(aid)].append(aid)

    class_freq: Counter[str] = Counter()
    for aid in assets:
        class_freq.update(set(classes_of.get(aid, ())))

    split_of: dict[int, str] = {}
    names = [n for n in SPLIT_NAMES if ratios.get(n, 0) > 0]
    kept = {a: sp for a, sp in (fixed or {}).items() if a in assets and sp in names}
    strata: dict[str, list[tuple[str, list[int]]]] = defaultdict(list)
    kept_count: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(names, 0))
    total = dict.fromkeys(names, 0)
    placed_total = 0
    for members in groups.values():
        keys = sorted(assets[a] for a in members)
        classes = {c for a in members for c in classes_of.get(a, ())}
        # The rarest class leads: rare classes then reach every split before common ones fill them.
        stratum = min(classes, key=lambda c: (class_freq[c], c)) if classes else ""
        old = [kept[a] for a in sorted(members) if a in kept]
        if old:
            # Kept ones stay where they were, even in a group an earlier version already split (the
            # leak is that version's; moving an image out of a train split now would make a new one).
            for a in members:
                split_of[a] = kept.get(a, old[0])
                kept_count[stratum][split_of[a]] += 1
                total[split_of[a]] += 1
            placed_total += len(members)
            continue
        order = hashlib.sha256(f"{seed}\0{keys[0]}".encode()).hexdigest()
        strata[stratum].append((order, members))

    for stratum in sorted(set(strata) | set(kept_count), key=lambda c: (class_freq[c] if c else float("inf"), c)):
        count = dict(kept_count[stratum]) if stratum in kept_count else dict.fromkeys(names, 0)
        placed = sum(count.values())
        for _order, members in sorted(strata[stratum]):
            size = len(members)
            target, target_total = placed + size, placed_total + size

            # Furthest below its share, in this stratum and overall, wins; so small strata fill global gaps.
            # max() calls the key at once, so the loop's current values are the ones it reads.
            best = max(names, key=lambda n: (
                ratios[n] * target - count[n] + ratios[n] * target_total - total[n], ratios[n], -names.index(n)))
            count[best] += size
            total[best] += size
            placed, placed_total = target, target_total
            for a in members:
                split_of[a] = best
    return SplitAssignment(split_of, len(groups))
