"""The next-version policy decides from the annotation batches after the newest frozen version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from dsgen_core.demo.synth import generate_demo_dataset
from dsgen_core.errors import DsgenError
from dsgen_core.loop.batches import batch_tags, get_batch, tagged_batches
from dsgen_core.loop.policy import cut_next_version, decide_next_version, get_policy, set_policy
from dsgen_core.registry.db import Registry
from dsgen_core.registry.projects import get_project
from dsgen_core.registry.schema import ChangeEvent, DatasetVersion
from dsgen_core.storage import LocalStorage
from dsgen_core.versions.lifecycle import freeze_version
from support import import_file


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("demo")
    first = generate_demo_dataset(root / "a", n_images=12, seed=1).root
    second = generate_demo_dataset(root / "b", n_images=8, seed=2, add_class="star").root
    return first, second


def _import(registry: Registry, root: Path) -> int:
    return import_file(registry, root / "annotations" / "instances_default.json", images=root / "images").ingest.batch_id


def test_a_batch_is_the_unit_of_change(registry: Registry, batches: tuple[Path, Path]) -> None:
    batch_id = _import(registry, batches[0])
    with registry.session() as s:
        b = get_batch(s, get_project(s, "p"), batch_id)
        events = s.scalars(select(ChangeEvent).where(ChangeEvent.entity.in_(["assets", "annotations"]))).all()
    assert (b.operation, b.source, b.images_new) == ("import", "human", 12) and b.objects_new > 0
    assert events and {e.batch_id for e in events} == {batch_id}
    assert tagged_batches(batch_tags([3, 1, 3])) == [1, 3] and batch_tags([3])["dsgen/batch-3"] == "true"
    assert batch_tags(list(range(60)))["dsgen/batches"].endswith(",+10")


def test_the_policy_cuts_at_its_thresholds_and_waits_for_its_draft(registry: Registry,
                                                                  batches: tuple[Path, Path]) -> None:
    storage = LocalStorage(registry.settings.storage_root)
    _import(registry, batches[0])
    with registry.session() as s:
        p = get_project(s, "p")
        assert not decide_next_version(s, p).cut  # off by default
        assert "policy is off" in decide_next_version(s, p).reason
        set_policy(s, p, enabled=True, min_classes=1, actor="test")
        d = decide_next_version(s, p)
        assert d.cut and d.tag == "v1" and "3 new classes >= 1" in d.reason
        cut_next_version(s, p, d.tag, actor="test")
        waiting = decide_next_version(s, p)
        assert not waiting.cut and "draft v1" in waiting.reason
        freeze_version(s, p, "v1", storage=storage)
        after = decide_next_version(s, p)
        assert not after.cut and after.tag == "v2" and "nothing changed since v1" in after.reason
    second = _import(registry, batches[1])
    with registry.session() as s:
        p = get_project(s, "p")
        set_policy(s, p, min_classes=None, min_annotations=10_000, actor="test")
        below = decide_next_version(s, p)
        assert not below.cut and below.pending.batches == [second] and below.pending.classes == 1
        assert below.pending.images == 8 and "below the policy" in below.reason
        set_policy(s, p, min_classes=1)
        assert decide_next_version(s, p).cut
        set_policy(s, p, min_classes=None, window_hours=1.0)
        assert not decide_next_version(s, p).cut
        later = datetime.now(UTC) + timedelta(hours=2)
        assert "v1 is 2.0 h old" in decide_next_version(s, p, now=later).reason


def test_a_policy_refuses_bad_values_by_name(registry: Registry, batches: tuple[Path, Path]) -> None:
    _import(registry, batches[0])
    with registry.session() as s:
        p = get_project(s, "p")
        for bad, says in (({"min_images": 0}, "min_images must be positive"), ({"trigger": "cron"}, "trigger"),
                          ({"query": "width>>"}, "width"), ({"recipe": "nope"}, "unknown recipe 'nope'"),
                          ({"colour": 1}, r"unknown field\(s\) colour")):
            with pytest.raises(DsgenError, match=says):
                set_policy(s, p, **bad)
        assert get_policy(s, p).enabled is False


def test_the_next_draft_takes_the_policys_query_split_and_seed(registry: Registry, batches: tuple[Path, Path]) -> None:
    _import(registry, batches[0])
    with registry.session() as s:
        p = get_project(s, "p")
        set_policy(s, p, enabled=True, query="tag:none OR width>1", split_config="train=0.6,val=0.2,test=0.2", seed=7)
        v = cut_next_version(s, p, "v1", actor="test")
        row = s.get(DatasetVersion, v.id)
        assert row is not None and (row.query, row.seed) == ("tag:none OR width>1", 7)
        assert row.split_config == {"train": 0.6, "val": 0.2, "test": 0.2}
