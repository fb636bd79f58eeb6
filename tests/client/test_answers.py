"""The client validates every answer: a schema per answer, tokens quoted and shaped, no redirect followed, a fuzz."""

from __future__ import annotations

import io
import json
import math

import pytest
import requests
from helpers import make_photo
from hypothesis import given
from hypothesis import strategies as st
from requests.structures import CaseInsensitiveDict

from tagger.client import answers
from tagger.client import cloudsight as cs
from tagger.emulator import Emulator, Faults


def api_for(emu: Emulator) -> cs.API:
    return cs.API(cs.SimpleAuth(emu.key), base_url=emu.url)


def photo_bytes(tmp_path) -> bytes:
    return make_photo(tmp_path / "p.jpg", seed=7, size=(120, 90)).read_bytes()


def test_the_answer_error_is_a_transient_api_error():
    assert issubclass(cs.AnswerError, cs.TransientError) and issubclass(cs.AnswerError, cs.APIError)
    assert cs.AnswerError.retryable and issubclass(cs.Redirected, cs.APIError) and not cs.Redirected.retryable


@pytest.mark.parametrize("token", ["../../../admin", "..", "a/../b", "a?b=1", "a#b", "a b", "a\r\nX: y", "\ud800", ""])
def test_a_token_no_service_issues_is_refused_before_anything_is_sent(token):
    with Emulator(latency=(0.01, 0.02)) as emu, api_for(emu) as api:
        with pytest.raises(cs.AnswerError) as poll:
            api.image_response(token)
        with pytest.raises(cs.AnswerError):
            api.repost(token)
        assert emu.counters()["requests"] == 0
    assert poll.value.field == "token" and not poll.value.ambiguous
    assert "\r" not in poll.value.description and "\n" not in poll.value.description


@pytest.mark.slow
def test_valid_answers_come_back_as_the_dicts_they_were(tmp_path):
    with Emulator(latency=(0.01, 0.02)) as emu, api_for(emu) as api:
        job = api.image_request(io.BytesIO(photo_bytes(tmp_path)), "p.jpg")
        done = api.wait(job["token"], timeout=5)
        balance = api.credit_balance
    assert set(job) >= {"token", "url", "ttl", "status"} and job["status"] == cs.STATUS_NOT_COMPLETED
    assert done["status"] == cs.STATUS_COMPLETED and isinstance(done["name"], str) and done["flags"] == []
    assert done["token"] == job["token"] and balance == 100_000 - 1


def test_a_submission_without_a_usable_token_is_ambiguous_and_one_with_a_bad_status_keeps_its_token(tmp_path):
    data = photo_bytes(tmp_path)
    with Emulator(latency=(0.01, 0.02), faults=Faults(submit_fields={"token": ["x"]})) as emu, api_for(emu) as api:
        with pytest.raises(cs.AnswerError) as lost:
            api.image_request(io.BytesIO(data), "p.jpg")
        emu.set_faults(Faults(submit_fields={"status": 7}))
        with pytest.raises(cs.AnswerError) as kept:
            api.image_request(io.BytesIO(data), "p.jpg")
        assert emu.counters()["submissions"] == 2
    assert lost.value.ambiguous and lost.value.token is None and lost.value.field == "token"
    assert not kept.value.ambiguous and kept.value.field == "status" and answers.check_token(kept.value.token)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_no_redirect_is_followed_and_the_error_says_where_it_pointed(tmp_path, status):
    data = photo_bytes(tmp_path)
    with Emulator(latency=(0.01, 0.02)) as elsewhere:
        faults = Faults(redirect_to=f"http://{elsewhere.address}", redirect_status=status)
        with Emulator(latency=(0.01, 0.02), faults=faults) as emu, api_for(emu) as api:
            with pytest.raises(cs.Redirected) as submit:
                api.image_request(io.BytesIO(data), "p.jpg")
            with pytest.raises(cs.Redirected):
                api.image_response("BjMGgyIZQt7QNPNZKmzq2A")
            assert emu.counters()["redirected"] == 2 and emu.counters()["submissions"] == 0
        assert elsewhere.counters()["requests"] == 0
    assert submit.value.location == f"http://{elsewhere.address}/v1/images"
    assert submit.value.location in submit.value.description and not submit.value.retryable


# -- the fuzz: arbitrary JSON and headers never raise anything but the client's documented errors -------------

_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)  # lone surrogates and controls included
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)
_FIELDS = ("token", "status", "name", "reason", "flags", "categories", "url", "ttl", "error")
_ANSWER = st.dictionaries(st.sampled_from(_FIELDS) | _TEXT, _JSON | st.sampled_from(["completed", "abc_DEF-1"]))


def _response(status: int, body: bytes, headers: dict[str, str]) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers = CaseInsensitiveDict(headers)
    response.url = "http://127.0.0.1:9/v1/images"
    return response


def _encode(value: object) -> bytes:
    # json.dumps escapes a lone surrogate (as the emulator sends it): the client decodes it back to one.
    return json.dumps(value, allow_nan=True).encode()


def _believable(text: object) -> None:
    assert text is None or isinstance(text, str)
    if isinstance(text, str):
        text.encode("utf-8")  # a lone surrogate would raise here (and in SQLite)
        assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or (ord(ch) & 0xFFFE) == 0xFFFE for ch in text)


@given(
    kind=st.sampled_from(["submit", "poll", "repost"]),
    status=st.sampled_from([200, 201, 200, 200, 404, 422, 301, 307, 401, 429, 500, 503]),
    body=_ANSWER.map(_encode) | _JSON.map(_encode) | st.binary(max_size=60),
    location=_TEXT,
)
def test_fuzz_any_answer_is_believed_clean_or_refused_with_a_documented_error(kind, status, body, location):
    headers = {"Location": location} if location else {}
    try:
        answer = cs.read_answer(kind, _response(status, body, headers), "POST /images")
    except cs.APIError as exc:
        exc.description.encode("utf-8")
        assert "\r" not in exc.description and "\n" not in exc.description
        try:
            decoded = json.loads(body)
        except ValueError:
            decoded = None
        if status in (200, 201) and not (isinstance(decoded, dict) and "error" in decoded):
            assert isinstance(exc, cs.AnswerError), exc  # an answer that came back is only ever an answer error
        if isinstance(exc, cs.AnswerError):
            assert exc.token is None or answers.check_token(exc.token) == exc.token
            _believable(exc.reason)
        return
    if answer is None:
        assert kind == "repost"
        return
    assert isinstance(answer, dict)
    if kind == "submit":  # a submission's schema is its token and status; nothing else of it is read
        assert answers.check_token(answer["token"]) == answer["token"]
        _believable(answer.get("status"))
        return
    for field in ("status", "reason", "name"):
        _believable(answer.get(field))
    for field in ("flags", "categories"):
        items = answer.get(field)
        assert items is None or (isinstance(items, list) and all(_believable(i) is None for i in items))
    name = answer.get("name")
    assert name is None or 0 < len(name) <= answers.MAX_CAPTION


@given(st.text(st.characters(exclude_categories=()), max_size=30) | st.sampled_from(["inf", "-inf", "nan", "1e400"]))
def test_fuzz_a_credit_header_is_a_bounded_count_or_ignored(value):
    balance = answers.credit_balance(value)
    assert balance is None or (isinstance(balance, int) and abs(balance) < 10**15)


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers())
def test_fuzz_a_numeric_credit_header_round_trips_when_it_is_a_count(number):
    balance = answers.credit_balance(str(number))
    if isinstance(number, int) and abs(number) < 10**15:
        assert balance == number
    elif isinstance(number, float) and (not math.isfinite(number) or not number.is_integer()):
        assert balance is None
