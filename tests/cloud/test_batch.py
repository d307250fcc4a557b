"""From bytes to storable records: the shared decoded-bytes budget, the record count before parsing, storability."""

from __future__ import annotations

import gzip
import json

import pytest

from ruvon_cloud.batch import MAX_DEPTH, DecodedBudget, HTTPError, decode, parse, unstorable


def test_a_body_past_the_shared_budget_is_503_and_gives_back_what_it_took():
    """With the budget mostly held by other requests, a gzip body is asked to retry and the budget is left as it was."""
    budget = DecodedBudget(1_000_000)
    budget.take(600_000)  # what requests in flight hold
    with pytest.raises(HTTPError) as refused:
        decode("gzip", gzip.compress(b"0" * 500_000), 2_000_000, budget)
    assert (refused.value.status, refused.value.retry_after) == (
        503,
        2,
    ) and budget.in_use == 600_000
    budget.release(600_000)
    decoded = decode("gzip", gzip.compress(b"0" * 500_000), 2_000_000, budget)
    assert decoded.body == b"0" * 500_000 and budget.in_use == 500_000
    decoded.release()
    assert budget.in_use == 0


def test_truncated_or_foreign_bodies_are_client_errors():
    """A cut-off gzip body is 400, an unknown encoding 415, and neither keeps budget."""
    budget = DecodedBudget(1_000_000)
    for encoding, body, status in (("gzip", gzip.compress(b"{}" * 1000)[:-10], 400), ("br", b"x", 415),
                                   ("gzip", b"not gzip", 400)):  # fmt: skip
        with pytest.raises(HTTPError) as err:
            decode(encoding, body, 1_000_000, budget)
        assert err.value.status == status and budget.in_use == 0


def test_too_many_records_are_counted_before_the_batch_is_parsed():
    """A body naming more records than allowed is 413 even when it is not valid JSON at all (nothing was parsed)."""
    body = b'{"audit_id": 1}' * 11 + b"<not json"
    with pytest.raises(HTTPError) as err:
        parse(body, "d", None, max_records=10, nul_ok=True)
    assert err.value.status == 413


def test_unstorable_values_are_named():
    """NUL (where the store cannot hold it), lone surrogates, NaN, deep nesting and int64 overflow are each named; the rest passes."""
    assert unstorable({"state": {"a": ["ok", 1, 2.5, None, True]}}, nul_ok=False) is None
    assert "NUL" in unstorable({"state": {"a": "x\x00"}}, nul_ok=False)
    assert unstorable({"state": {"a": "x\x00"}}, nul_ok=True) is None
    assert "surrogate" in unstorable({"state": {"\udc80": 1}}, nul_ok=True)
    assert "not a JSON number" in unstorable({"state": {"a": float("nan")}}, nul_ok=True)
    assert "64-bit" in unstorable({"sync_version": 2**63}, nul_ok=True)
    assert unstorable({"state": {"sync_version": 2**70}}, nul_ok=True) is None  # JSON holds it
    deep = json.loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1))
    assert "nested deeper" in unstorable({"state": {"a": deep}}, nul_ok=True)
