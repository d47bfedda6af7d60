"""The ack-dropping proxy's protocol reading: if it miscounted a payload it would corrupt the
stream it relays, and the fault scenarios would test the proxy instead of the services."""

from __future__ import annotations

from tests.fault.nats_proxy import _ack_kind, _next_command, parse_ack_subject


def test_both_ack_subject_layouts_are_read() -> None:
    assert parse_ack_subject("$JS.ACK.CONSULTATIONS.funding-commune-results.2.17.9.1700000000.3") == (
        "CONSULTATIONS",
        "funding-commune-results",
        2,
        17,
    )
    assert parse_ack_subject("$JS.ACK._.ACCHASH.FUNDING.projects-allocations.1.5.5.1700000000.0.tok") == (
        "FUNDING",
        "projects-allocations",
        1,
        5,
    )
    assert parse_ack_subject("$JS.API.CONSUMER.MSG.NEXT.FUNDING.projects-allocations") is None
    assert parse_ack_subject("$JS.ACK.X.Y.notanumber.5.5.1.0") is None


def test_commands_are_split_exactly_even_across_reads() -> None:
    ack = b"PUB $JS.ACK.S.c.1.7.7.1.0 _INBOX.a.b 0\r\n\r\n"
    hpub = b"HPUB orders.x 12 17\r\nNATS/1.0\r\n\r\nhello\r\n"
    buffer = b"PING\r\n" + ack + hpub + b"PUB half 10\r\n01234"
    seen = []
    while (command := _next_command(buffer)) is not None:
        raw, subject, payload = command
        seen.append((raw, subject, payload))
        buffer = buffer[len(raw) :]
    assert seen == [
        (b"PING\r\n", None, b""),
        (ack, "$JS.ACK.S.c.1.7.7.1.0", b""),
        (hpub, "orders.x", b"hello"),
    ]
    assert buffer == b"PUB half 10\r\n01234"  # incomplete: waits for the rest of the payload


def test_ack_kinds() -> None:
    assert [_ack_kind(p) for p in (b"", b"+ACK", b"-NAK {}", b"+TERM", b"+WPI")] == [
        "ack",
        "ack",
        "nak",
        "term",
        "progress",
    ]
