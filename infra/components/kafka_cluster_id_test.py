"""Cluster ids are valid KRaft ids, including those that start with '-'."""

from __future__ import annotations

import base64

from infra.components.kafka import _cluster_id


def test_cluster_ids_are_16_bytes_of_urlsafe_base64():
    ids = {_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    for cluster_id in ids:
        assert len(cluster_id) == 22
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
    assert any(i.startswith("-") for i in ids)  # the case the format command must survive
