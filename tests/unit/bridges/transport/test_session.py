"""What the session shares without a server: the key partitioner and the fence's headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridges.transport.session import Fence, partition_for_key

#: CRC-32 (IEEE) of b"123456789", the check value every implementation publishes
CRC32_CHECK = 0xCBF43926


@pytest.mark.parametrize(
    ("key", "partitions", "expected"),
    [
        pytest.param(b"123456789", 2**32, CRC32_CHECK, id="crc32-check-value"),
        pytest.param(b"123456789", 1000, CRC32_CHECK % 1000, id="modulo-the-count"),
        pytest.param(b"", 4, 0, id="empty-key"),
        pytest.param(b"a", 4, 3, id="a"),
        pytest.param(b"student-1", 12, 4, id="student-1"),
        pytest.param(b"student-2", 12, 6, id="student-2"),
        pytest.param(b"anything", 1, 0, id="one-partition"),
    ],
)
def test_partition_for_key_is_crc32_modulo_the_partition_count(key: bytes, partitions: int, expected: int) -> None:
    # Pinned values: HTTP ingest and other NATS clients must place keys exactly the same way.
    assert partition_for_key(key, partitions) == expected


@given(st.binary(), st.integers(1, 512))
def test_partition_for_key_is_in_range(key: bytes, partitions: int) -> None:
    assert 0 <= partition_for_key(key, partitions) < partitions


def test_a_fence_names_the_subject_and_sequence_its_writes_expect() -> None:
    assert Fence("faust.t.0.fence", 12).headers() == {
        "Nats-Expected-Last-Subject-Sequence": "12",
        "Nats-Expected-Last-Subject-Sequence-Subject": "faust.t.0.fence",
    }
