"""The task payloads: what a malformed one is refused for before any work runs."""

from __future__ import annotations

import pytest

from trainfarm.workers.payloads import SnapshotRef


@pytest.mark.parametrize("bad", ["/etc/passwd", "../outside.json", "datasets/../../x.json", "a\\b.json"])
def test_a_snapshot_reference_outside_the_artifact_root_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="relative to the artifact root"):
        SnapshotRef(path=bad, file_sha256="0" * 64, content_hash="0" * 64)
