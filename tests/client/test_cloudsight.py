"""The client keeps the original package's API and speaks to the emulator over real HTTP."""

from __future__ import annotations

import http.server
import io
import threading
from functools import partial

import pytest
from helpers import make_photo

from tagger import cloudsight
from tagger.client.cloudsight import API, OAuth, SimpleAuth
from tagger.emulator import Emulator, Faults


def jpeg(tmp_path, seed=0) -> bytes:
    return make_photo(tmp_path / f"p{seed}.jpg", seed).read_bytes()


def test_public_names_of_the_original_package():
    for name in ("SimpleAuth", "OAuth", "API", "APIError"):
        assert hasattr(cloudsight, name)
    assert cloudsight.STATUS_NOT_COMPLETED == "not completed"
    assert cloudsight.STATUS_COMPLETED == "completed"
    assert cloudsight.STATUS_NOT_FOUND == "not found"
    assert cloudsight.STATUS_SKIPPED == "skipped"
    assert cloudsight.STATUS_TIMEOUT == "timeout"
    assert [
        cloudsight.REASON_OFFENSIVE,
        cloudsight.REASON_BLURRY,
        cloudsight.REASON_CLOSE,
        cloudsight.REASON_DARK,
        cloudsight.REASON_BRIGHT,
        cloudsight.REASON_UNSURE,
    ] == ["offensive", "blurry", "close", "dark", "bright", "unsure"]
    for method in ("image_request", "remote_image_request", "image_response", "repost", "wait"):
        assert callable(getattr(API, method))
    assert API(SimpleAuth("k")).base_url == "https://api.cloudsight.ai/v1"
    assert cloudsight.APIError("text").description == "text"


@pytest.mark.parametrize("auth_kind", ["simple", "oauth"])
def test_submit_and_wait_with_both_auth_schemes(emulator, tmp_path, auth_kind):
    auth = SimpleAuth(emulator.key) if auth_kind == "simple" else OAuth(emulator.key, emulator.secret)
    sleeps = []
    with API(auth, base_url=emulator.url, sleep=lambda s: (sleeps.append(s), __import__("time").sleep(0.05))) as api:
        response = api.image_request(io.BytesIO(jpeg(tmp_path)), "photo.jpg", {"image_request[locale]": "en-US"})
        assert response["status"] == cloudsight.STATUS_NOT_COMPLETED
        assert len(response["token"]) >= 16
        status = api.wait(response["token"], timeout=30)
        assert status["status"] == cloudsight.STATUS_COMPLETED
        assert status["name"]
        assert sleeps[0] == 4  # the documented first wait
        assert all(s == 1 for s in sleeps[1:])
        assert api.credit_balance is not None
    c = emulator.counters()
    assert c["submissions"] == 1 and c["auth_failures"] == 0


def test_wrong_key_and_wrong_secret_raise_auth_error_without_the_key(emulator, tmp_path):
    for auth in (SimpleAuth("wrong-key-123"), OAuth(emulator.key, "wrong-secret-456")):
        with API(auth, base_url=emulator.url) as api:
            with pytest.raises(cloudsight.AuthError) as err:
                api.image_request(io.BytesIO(jpeg(tmp_path)), "photo.jpg")
            assert not err.value.retryable
            assert "wrong-key-123" not in str(err.value) and "wrong-secret-456" not in str(err.value)
    assert emulator.counters()["auth_failures"] == 2
    assert emulator.counters()["submissions"] == 0
    assert "wrong" not in repr(SimpleAuth("wrong")) and "s3" not in repr(OAuth("k1", "s3"))


def test_validation_error_carries_the_field_errors(emulator):
    with API(SimpleAuth(emulator.key), base_url=emulator.url) as api:
        with pytest.raises(cloudsight.ValidationError) as err:
            api.image_request(io.BytesIO(b"not an image at all"), "x.jpg")
    assert "image" in err.value.errors
    assert not err.value.retryable


def test_locale_defaults_to_en_us(emulator, tmp_path):
    with API(SimpleAuth(emulator.key), base_url=emulator.url) as api:
        assert api.image_request(jpeg(tmp_path), "p.jpg")["token"]  # no params: locale still sent


def test_remote_image_request_with_oauth_signed_form(emulator, tmp_path):
    make_photo(tmp_path / "www" / "remote.jpg", 7)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/remote.jpg"
        with API(
            OAuth(emulator.key, emulator.secret), base_url=emulator.url, sleep=lambda s: __import__("time").sleep(0.05)
        ) as api:
            token = api.remote_image_request(url, {"image_request[locale]": "en-US"})["token"]
            assert api.wait(token, timeout=30)["status"] == cloudsight.STATUS_COMPLETED
    finally:
        server.shutdown()
    assert emulator.counters()["remote_submissions"] == 1


def test_transient_errors_are_marked_retryable(tmp_path):
    data = jpeg(tmp_path)
    cases = [
        (Faults(server_error_rate=1.0), cloudsight.ServerError),
        (Faults(rate_limit_rate=1.0, retry_after=3), cloudsight.RateLimited),
        (Faults(drop_rate=1.0), cloudsight.NetworkError),
    ]
    for faults, kind in cases:
        with Emulator(faults=faults) as emu, API(SimpleAuth(emu.key), base_url=emu.url) as api:
            with pytest.raises(kind) as err:
                api.image_request(io.BytesIO(data), "p.jpg")
            assert err.value.retryable
            if kind is cloudsight.RateLimited:
                assert err.value.retry_after == 3
            assert emu.counters()["submissions"] == 0


def test_unreachable_service_is_a_network_error():
    with API(SimpleAuth("k"), base_url="http://127.0.0.1:9/v1", timeout=2) as api:
        with pytest.raises(cloudsight.NetworkError):
            api.image_response("abc")


def test_repost_of_a_timed_out_job(tmp_path):
    with Emulator(latency=(0.05, 0.05), faults=Faults(timeout_rate=1.0)) as emu:
        with API(SimpleAuth(emu.key), base_url=emu.url, sleep=lambda s: __import__("time").sleep(0.05)) as api:
            token = api.image_request(jpeg(tmp_path), "p.jpg")["token"]
            assert api.wait(token, timeout=30)["status"] == cloudsight.STATUS_TIMEOUT
            emu.set_faults(Faults())
            assert api.repost(token) is None
            assert api.wait(token, timeout=30)["status"] == cloudsight.STATUS_COMPLETED
        assert emu.counters()["reposts"] == 1
        assert emu.counters()["submissions"] == 1


def test_unknown_token_is_not_found(emulator):
    with API(SimpleAuth(emulator.key), base_url=emulator.url) as api:
        assert api.image_response("AAAAAAAAAAAAAAAAAAAAAA")["status"] == cloudsight.STATUS_NOT_FOUND


@pytest.mark.parametrize("kind", ["timeout", "reset", "500", "502", "504"])
@pytest.mark.slow
def test_a_lost_answer_after_the_job_was_created_is_ambiguous(tmp_path, kind):
    faults = Faults(lost_answers=1, lost_answer_kind=kind, lost_answer_seconds=3.0)
    with Emulator(faults=faults) as emu, API(SimpleAuth(emu.key), base_url=emu.url, timeout=(5.0, 1.0)) as api:
        with pytest.raises(cloudsight.TransientError) as err:
            api.image_request(io.BytesIO(jpeg(tmp_path)), "p.jpg")
        assert err.value.retryable and err.value.ambiguous
        assert isinstance(err.value, cloudsight.ServerError if kind.isdigit() else cloudsight.NetworkError)
        c = emu.counters()
    assert c["submissions"] == 1 and c["lost_answers"] == 1  # created and charged, answer lost


def test_what_surely_cost_nothing_is_not_ambiguous(tmp_path):
    data = jpeg(tmp_path)
    with Emulator(faults=Faults(outage_requests=1, outage_status=503, outage_retry_after=2)) as emu:
        with API(SimpleAuth(emu.key), base_url=emu.url) as api:
            with pytest.raises(cloudsight.ServerError) as err:
                api.image_request(io.BytesIO(data), "p.jpg")
            assert (err.value.status_code, err.value.retry_after, err.value.ambiguous) == (503, 2.0, False)
            emu.set_faults(Faults(rate_limit_rate=1.0))
            with pytest.raises(cloudsight.RateLimited) as err:
                api.image_request(io.BytesIO(data), "p.jpg")
            assert not err.value.ambiguous
            # A 503 without Retry-After may be a proxy's answer to a request that got through: ambiguous.
            emu.set_faults(Faults(outage_requests=1, outage_status=503))
            with pytest.raises(cloudsight.ServerError) as err:
                api.image_request(io.BytesIO(data), "p.jpg")
            assert err.value.ambiguous
        port = emu.port
    # Nothing listens any more: the connection is refused before anything is sent.
    with API(SimpleAuth("k"), base_url=f"http://127.0.0.1:{port}/v1") as api:
        with pytest.raises(cloudsight.NetworkError) as err:
            api.image_request(io.BytesIO(data), "p.jpg")
        assert err.value.retryable and not err.value.ambiguous
    assert not cloudsight.AuthError("x").ambiguous and not cloudsight.ValidationError("x").ambiguous


def test_a_dropped_connection_after_the_request_was_read_is_ambiguous(tmp_path):
    with Emulator(faults=Faults(drop_rate=1.0)) as emu, API(SimpleAuth(emu.key), base_url=emu.url) as api:
        with pytest.raises(cloudsight.NetworkError) as err:
            api.image_request(io.BytesIO(jpeg(tmp_path)), "p.jpg")
    assert err.value.ambiguous
