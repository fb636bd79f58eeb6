"""The original ``cloudsight`` 0.9.2 package (the seed's client), used exactly as the seed documents it, against the emulator.

It hard-codes its base URL (``https://api.cloudsightapi.com``, the old host's
paths); the test points its two module-level URLs at the emulator, which
answers the old paths too. Its ``wait()`` sleeps 4 s, then 1 s per poll:
only that sleep is shortened.
"""

from __future__ import annotations

import io
import time
import types

import cloudsight
import cloudsight.api
import pytest
from helpers import make_photo

from tagger.emulator import Emulator


@pytest.fixture
def original(monkeypatch):
    """The original client aimed at a fresh emulator."""
    with Emulator(latency=(0.05, 0.15), seed=3) as emu:
        base = emu.url.rsplit("/v1", 1)[0]
        monkeypatch.setattr(cloudsight.api, "REQUESTS_URL", base + "/image_requests")
        monkeypatch.setattr(cloudsight.api, "RESPONSES_URL", base + "/image_responses/")
        monkeypatch.setattr(cloudsight.api, "time", types.SimpleNamespace(sleep=lambda s: time.sleep(min(s, 0.05))))
        yield emu


def test_the_original_package_is_the_seed_version():
    assert hasattr(cloudsight, "SimpleAuth") and hasattr(cloudsight, "OAuth") and hasattr(cloudsight, "APIError")
    assert cloudsight.api.BASE_URL == "https://api.cloudsightapi.com"  # 0.9.2: the old host


@pytest.mark.parametrize("scheme", ["key", "oauth1"])
def test_the_seed_usage_works_against_the_emulator(original, tmp_path, scheme):
    photo = make_photo(tmp_path / "your-file.jpg", seed=77)
    # As the seed documents it, line for line.
    if scheme == "key":
        auth = cloudsight.SimpleAuth(original.key)
    else:
        auth = cloudsight.OAuth(original.key, original.secret)
    api = cloudsight.API(auth)
    with open(photo, "rb") as f:
        response = api.image_request(
            f,
            "your-file.jpg",
            {
                "image_request[locale]": "en-US",
            },
        )
    assert response["status"] == cloudsight.STATUS_NOT_COMPLETED
    status = api.wait(response["token"], timeout=30)
    assert status["status"] == cloudsight.STATUS_COMPLETED
    assert status["name"]

    # The emulator fetches only loopback URLs: serve one ourselves.
    import http.server
    import threading
    from functools import partial

    www = tmp_path / "www"
    make_photo(www / "image.jpg", seed=78)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        response = api.remote_image_request(
            f"http://127.0.0.1:{server.server_address[1]}/image.jpg",
            {
                "image_request[locale]": "en-US",
            },
        )
        status = api.image_response(response["token"])
        while status["status"] == cloudsight.STATUS_NOT_COMPLETED:
            time.sleep(0.05)
            status = api.image_response(response["token"])
    finally:
        server.shutdown()
    assert status["status"] == cloudsight.STATUS_COMPLETED and status["name"]
    c = original.counters()
    assert c["submissions"] == 2 and c["remote_submissions"] == 1
    assert c["auth_failures"] == 0 and c["polls"] >= 2


def test_the_original_oauth_with_a_wrong_secret_is_refused(original, tmp_path):
    photo = make_photo(tmp_path / "p.jpg", seed=79)
    api = cloudsight.API(cloudsight.OAuth(original.key, "not-the-secret"))
    with open(photo, "rb") as f, pytest.raises(cloudsight.APIError) as refused:
        api.image_request(f, "p.jpg", {"image_request[locale]": "en-US"})
    assert "signature" in str(refused.value) and "not-the-secret" not in str(refused.value)
    c = original.counters()
    assert c["auth_failures"] == 1 and c["submissions"] == 0


def test_tagger_and_the_original_sign_the_same_upload_alike(original, tmp_path):
    """tagger's OAuth signs a multipart upload's fields as 0.9.2 does: both are accepted, an RFC-strict signature is not."""
    import requests
    from requests_oauthlib import OAuth1

    from tagger.client.cloudsight import API, OAuth

    data = make_photo(tmp_path / "p.jpg", seed=80).read_bytes()
    params = {"image_request[locale]": "en-US", "image_request[language]": "en"}
    ours = API(OAuth(original.key, original.secret), base_url=original.url).image_request(
        io.BytesIO(data), "p.jpg", params
    )
    theirs = cloudsight.API(cloudsight.OAuth(original.key, original.secret)).image_request(
        io.BytesIO(data), "p.jpg", params
    )
    assert ours["token"] and theirs["token"]
    strict = requests.post(
        original.url + "/images",
        auth=OAuth1(original.key, original.secret),
        files={"image_request[image]": ("p.jpg", data)},
        data=params,
        timeout=10,
    )
    assert strict.status_code == 401
    c = original.counters()
    assert c["submissions"] == 2 and c["auth_failures"] == 1
