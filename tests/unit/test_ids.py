"""UUIDv7 event ids."""

from ca4_events.ids import uuid7


def test_uuid7_has_version_7_and_the_rfc_variant() -> None:
    u = uuid7()
    assert u.version == 7, f"{u} is version {u.version}"
    assert u.variant == "specified in RFC 4122"


def test_uuid7_increases_even_within_one_millisecond() -> None:
    ids = [uuid7() for _ in range(5000)]
    assert ids == sorted(ids), "ids made in sequence must sort in sequence"
    assert len(set(ids)) == len(ids)
