"""Wire protocol v1: the signature string of the contract, constant sets, strict answers."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from pydantic import ValidationError

from ruvon_edge.status import TERMINAL
from sync_agent import protocol


def test_signature_is_hmac_over_the_exact_contract_string():
    """The signature is v1=hex(HMAC-SHA256(secret, ts\\nnonce\\nPOST\\npath\\nsha256(body)))."""
    body = b'{"batch_id": "b"}'
    expected = hmac.new(
        b"s3cret",
        f"1700000000\nn1\nPOST\n/pre/v1/devices/d/batches\n{hashlib.sha256(body).hexdigest()}".encode(),
        hashlib.sha256,
    ).hexdigest()
    assert (
        protocol.sign("s3cret", "1700000000", "n1", "POST", "/pre/v1/devices/d/batches", body)
        == f"v1={expected}"
    )
    assert protocol.batch_path("d", "/pre/") == "/pre/v1/devices/d/batches"


def test_signed_headers_verify_and_any_change_breaks_them():
    """Fresh headers verify; another body, path, nonce or secret does not."""
    h = protocol.signed_headers("rk_1", "sec", "/v1/devices/d/batches", b"body", "batch-1")
    assert h[protocol.H_IDEMPOTENCY] == "batch-1" and len(h[protocol.H_NONCE]) == 32
    args = (h[protocol.H_SIGNATURE], h[protocol.H_TIMESTAMP], h[protocol.H_NONCE], "POST")
    assert protocol.verify_signature("sec", *args, "/v1/devices/d/batches", b"body")
    assert not protocol.verify_signature("sec", *args, "/v1/devices/d/batches", b"bodY")
    assert not protocol.verify_signature("sec", *args, "/v1/devices/e/batches", b"body")
    assert not protocol.verify_signature("other", *args, "/v1/devices/d/batches", b"body")


def test_timestamp_window_is_300_seconds_either_way():
    """Timestamps within ±300 s are fresh; beyond, or not a number, are not."""
    assert protocol.timestamp_fresh("1000", now=1300) and protocol.timestamp_fresh("1300", now=1000)
    assert not protocol.timestamp_fresh("1000", now=1301) and not protocol.timestamp_fresh(
        "1301", now=1000
    )
    assert not protocol.timestamp_fresh("-5", now=0) and not protocol.timestamp_fresh(
        "1e3", now=1000
    )


def test_terminal_statuses_match_the_runtime():
    """The protocol's terminal set is exactly the runtime's (kept apart only for the import rule)."""
    assert protocol.TERMINAL_STATUSES == {str(s) for s in TERMINAL}


@pytest.mark.parametrize(
    "payload", ["{}", '{"batch_id": "b"}', "<html>portal</html>", '{"batch_id": "b", "acked_workfl']
)
def test_an_answer_without_every_ack_field_is_not_an_answer(payload):
    """{} , a partial object, HTML or truncated JSON do not parse as a batch answer."""
    with pytest.raises(ValidationError):
        protocol.BatchResponse.model_validate_json(payload)
