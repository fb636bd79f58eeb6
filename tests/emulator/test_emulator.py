"""The CloudSight emulator over real sockets on 127.0.0.1, spoken to with plain requests."""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from oauthlib.oauth1 import Client as OAuthClient
from PIL import Image, ImageOps
from requests_oauthlib import OAuth1

from tagger.emulator import Emulator, Faults, _vision, parse_latency
from tagger.emulator._http import parse_body

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_images"
KEY = "test-key"
SECRET = "test-secret"
SIMPLE = {"Authorization": f"CloudSight {KEY}"}
CATALOG = json.loads((ROOT / "tagger" / "emulator" / "catalog.json").read_text())["entries"]
CAPTIONS = {entry["file"]: entry["caption"] for entry in CATALOG}


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def pipeline_copy(path: Path, long_edge: int) -> bytes:
    """What the pipeline uploads: upright, RGB, downsized, JPEG quality 85."""
    with Image.open(path) as source:
        image = ImageOps.exif_transpose(source).convert("RGB")
    image.thumbnail((long_edge, long_edge), Image.Resampling.LANCZOS)
    return jpeg(image)


def noise(brightness: tuple[int, int] = (0, 255), size: tuple[int, int] = (320, 240)) -> bytes:
    low, high = brightness
    image = Image.effect_noise(size, 64).point(lambda v: low + v * (high - low) // 255)
    return jpeg(image)


def submit(emulator: Emulator, data: bytes, *, nested: bool = True, headers: dict | None = None, **fields: str):
    image_name = "image_request[image]" if nested else "image"
    form = {(f"image_request[{k}]" if nested else k): v for k, v in {"locale": "en-US", **fields}.items()}
    return requests.post(
        f"{emulator.url}/images",
        headers=SIMPLE if headers is None else headers,
        files={image_name: ("photo.jpg", data, "image/jpeg")},
        data=form,
        timeout=10,
    )


def poll(emulator: Emulator, token: str, **kwargs) -> requests.Response:
    return requests.get(f"{emulator.url}/images/{token}", headers=SIMPLE, timeout=10, **kwargs)


def repost(emulator: Emulator, token: str) -> requests.Response:
    return requests.post(f"{emulator.url}/images/{token}/repost", headers=SIMPLE, timeout=10)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def emulator(clock: FakeClock) -> Iterator[Emulator]:
    with Emulator(key=KEY, secret=SECRET, latency=(1.0, 2.0), ttl=60, seed=7, clock=clock) as running:
        yield running


@pytest.fixture
def image_server() -> Iterator[str]:
    """A tiny file server on loopback: /chelsea.jpg (200), /moved (302), anything else 404."""
    body = (SAMPLES / "chelsea.jpg").read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/chelsea.jpg":
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/chelsea.jpg")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# -- lifecycle ---------------------------------------------------------------


def test_submit_then_poll_completes_with_catalog_caption(emulator: Emulator, clock: FakeClock) -> None:
    answer = submit(emulator, (SAMPLES / "chelsea.jpg").read_bytes())
    assert answer.status_code == 200
    body = answer.json()
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", body["token"])
    assert body["status"] == "not completed"
    assert body["ttl"] == 60.0
    assert body["url"].startswith("http://127.0.0.1:")

    assert poll(emulator, body["token"]).json()["status"] == "not completed"
    clock.now += 0.99
    assert poll(emulator, body["token"]).json()["status"] == "not completed"
    clock.now += 1.02
    done = poll(emulator, body["token"]).json()
    assert done == {
        "token": body["token"],
        "url": body["url"],
        "ttl": pytest.approx(60 - 2.01, abs=0.1),
        "status": "completed",
        "name": CAPTIONS["chelsea.jpg"],
        "flags": [],
    }
    counters = emulator.counters()
    assert counters["submissions"] == 1
    assert counters["polls"] == 3
    assert counters["polls_by_token"] == {body["token"]: 3}
    settled = counters["completed_at"][body["token"]]
    assert 1001.0 <= settled <= 1002.0
    assert counters["first_seen_completed_at"] == {body["token"]: clock.now}


def test_flat_parameter_names_and_png_upload(emulator: Emulator, clock: FakeClock) -> None:
    answer = submit(emulator, (SAMPLES / "camera.png").read_bytes(), nested=False)
    assert answer.status_code == 200
    clock.now += 5
    assert poll(emulator, answer.json()["token"]).json()["name"] == CAPTIONS["camera.png"]


def test_old_paths_submit_poll_and_repost(clock: FakeClock) -> None:
    with Emulator(key=KEY, secret=SECRET, latency=(1, 1), clock=clock, faults=Faults(unsure_rate=1.0)) as emulator:
        base = emulator.url.removesuffix("/v1")
        data = (SAMPLES / "rocket.jpg").read_bytes()
        for prefix in (base, emulator.url):
            answer = requests.post(
                f"{prefix}/image_requests",
                headers=SIMPLE,
                files={"image_request[image]": ("r.jpg", data, "image/jpeg")},
                data={"image_request[locale]": "en-US"},
                timeout=10,
            )
            assert answer.status_code == 200
            token = answer.json()["token"]
            clock.now += 1
            job = requests.get(f"{prefix}/image_responses/{token}", headers=SIMPLE, timeout=10).json()
            assert (job["status"], job["reason"]) == ("skipped", "unsure")
            again = requests.post(f"{prefix}/image_requests/{token}/repost", headers=SIMPLE, timeout=10)
            assert (again.status_code, again.content) == (200, b"")
        assert emulator.counters()["reposts"] == 2


def test_ttl_runs_out_then_repost_completes(clock: FakeClock) -> None:
    with Emulator(key=KEY, secret=SECRET, latency=(3, 3), clock=clock) as emulator:
        token = submit(emulator, (SAMPLES / "coffee.jpg").read_bytes(), ttl="2").json()["token"]
        clock.now += 1.9
        assert poll(emulator, token).json()["status"] == "not completed"
        clock.now += 0.2
        job = poll(emulator, token).json()
        assert job["status"] == "timeout"
        assert job["ttl"] == 0.0
        # A repost draws a new latency but the same ttl: it times out again.
        assert repost(emulator, token).status_code == 200
        assert poll(emulator, token).json()["status"] == "not completed"
        clock.now += 2.1
        assert poll(emulator, token).json()["status"] == "timeout"

        max_token = submit(emulator, (SAMPLES / "coffee.jpg").read_bytes(), ttl="max").json()["token"]
        clock.now += 3
        assert poll(emulator, max_token).json()["name"] == CAPTIONS["coffee.jpg"]
        assert emulator.counters()["reposts"] == 1


def test_repost_rules(emulator: Emulator, clock: FakeClock) -> None:
    token = submit(emulator, (SAMPLES / "astronaut.jpg").read_bytes()).json()["token"]
    refused = repost(emulator, token)
    assert (refused.status_code, refused.json()) == (422, {"error": {"status": ["cannot be reposted"]}})
    clock.now += 3
    assert repost(emulator, token).status_code == 422  # completed is final
    blurry = submit(emulator, jpeg(Image.new("RGB", (300, 200), (90, 120, 60)))).json()["token"]
    clock.now += 3
    assert poll(emulator, blurry).json()["reason"] == "blurry"
    assert repost(emulator, blurry).status_code == 422  # blurry is final
    assert repost(emulator, "NoSuchTokenAtAllXXXXXX").status_code == 404
    counters = emulator.counters()
    assert counters["reposts"] == 0
    assert counters["validation_errors"] == 3


def test_unknown_token_polls_as_not_found(emulator: Emulator) -> None:
    answer = poll(emulator, "NoSuchTokenAtAllXXXXXX")
    assert answer.status_code == 200
    assert answer.json() == {"status": "not found", "token": "NoSuchTokenAtAllXXXXXX"}


@pytest.mark.slow
def test_real_clock_short_latency() -> None:
    # One second: the first poll must come before it even on a loaded machine (a submit and a poll over
    # loopback take milliseconds); an emulator that ignores its latency answers "completed" at once.
    with Emulator(key=KEY, secret=SECRET, latency=(1.0, 1.0)) as emulator:
        started = time.monotonic()
        token = submit(emulator, (SAMPLES / "gravel.jpg").read_bytes()).json()["token"]
        assert poll(emulator, token).json()["status"] == "not completed"
        time.sleep(max(0.0, started + 1.1 - time.monotonic()))
        assert poll(emulator, token).json()["name"] == CAPTIONS["gravel.jpg"]


# -- authentication -------------------------------------------------------------


def test_bad_and_missing_simple_key_is_401_without_echo(emulator: Emulator) -> None:
    wrong = submit(emulator, noise(), headers={"Authorization": "CloudSight not-the-key"})
    assert wrong.status_code == 401
    assert "error" in wrong.json()
    assert "not-the-key" not in wrong.text and KEY not in wrong.text
    assert poll(emulator, "x" * 22).status_code == 200
    missing = requests.get(f"{emulator.url}/images/{'x' * 22}", timeout=10)
    assert missing.status_code == 401
    counters = emulator.counters()
    assert counters["auth_failures"] == 2
    assert counters["submissions"] == 0


def official_oauth_header(url: str, fields: dict[str, str], secret: str = SECRET) -> str:
    """The Authorization header the official clients send: the upload's non-file fields are in the base string."""
    client = OAuthClient(KEY, client_secret=secret)
    _, headers, _ = client.sign(url, "POST", urlencode(fields), {"Content-Type": "application/x-www-form-urlencoded"})
    return headers["Authorization"]


def test_oauth_multipart_upload_signed_with_its_form_fields(emulator: Emulator, clock: FakeClock) -> None:
    url = f"{emulator.url}/images"
    fields = {"image_request[locale]": "en-US", "image_request[language]": "en"}
    image = {"image_request[image]": ("a.jpg", (SAMPLES / "astronaut.jpg").read_bytes(), "image/jpeg")}
    answer = requests.post(
        url, headers={"Authorization": official_oauth_header(url, fields)}, files=image, data=fields, timeout=10
    )
    assert answer.status_code == 200, answer.text
    clock.now += 3
    job = requests.get(f"{emulator.url}/images/{answer.json()['token']}", auth=OAuth1(KEY, SECRET), timeout=10)
    assert job.json()["name"] == CAPTIONS["astronaut.jpg"]
    # The fields are signed: another locale in the body than in the signature is refused.
    tampered = requests.post(
        url,
        headers={"Authorization": official_oauth_header(url, fields)},
        files=image,
        data={**fields, "image_request[locale]": "de-DE"},
        timeout=10,
    )
    assert tampered.status_code == 401
    # RFC-strict signing (requests-oauthlib leaves a multipart body's fields out) is not what the service verifies.
    strict = requests.post(url, auth=OAuth1(KEY, SECRET), files=image, data=fields, timeout=10)
    assert strict.status_code == 401
    counters = emulator.counters()
    assert counters["submissions"] == 1 and counters["auth_failures"] == 2


@pytest.mark.parametrize(
    "auth",
    [OAuth1(KEY, "wrong-secret"), OAuth1("wrong-key", SECRET)],
    ids=["wrong-secret", "wrong-key"],
)
def test_oauth_bad_signature_or_key_is_401(emulator: Emulator, auth: OAuth1) -> None:
    answer = requests.post(
        f"{emulator.url}/images",
        auth=auth,
        files={"image": ("a.jpg", noise(), "image/jpeg")},
        data={"locale": "en-US"},
        timeout=10,
    )
    assert answer.status_code == 401
    assert SECRET not in answer.text and KEY not in answer.text
    assert emulator.counters()["submissions"] == 0


def test_oauth_form_body_is_signed(emulator: Emulator, image_server: str) -> None:
    # Sign one body, send another: the body fields are part of the signature.
    client = OAuthClient(KEY, client_secret=SECRET)
    url = f"{emulator.url}/images"
    signed_body = urlencode(
        {"image_request[locale]": "en-US", "image_request[remote_image_url]": f"{image_server}/chelsea.jpg"}
    )
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    _, signed_headers, _ = client.sign(url, "POST", signed_body, headers)
    tampered = signed_body.replace("en-US", "de-DE")
    answer = requests.post(url, data=tampered, headers=signed_headers, timeout=10)
    assert answer.status_code == 401
    honest = requests.post(url, data=signed_body, headers=signed_headers, timeout=10)
    assert honest.status_code == 200


def test_oauth_stale_timestamp_is_401(emulator: Emulator) -> None:
    client = OAuthClient(KEY, client_secret=SECRET, timestamp=str(int(time.time()) - 3600))
    url = f"{emulator.url}/images/{'x' * 22}"
    _, headers, _ = client.sign(url, "GET")
    assert requests.get(url, headers=headers, timeout=10).status_code == 401
    fresh = OAuthClient(KEY, client_secret=SECRET, timestamp=str(int(time.time()) - 300))
    _, headers, _ = fresh.sign(url, "GET")
    assert requests.get(url, headers=headers, timeout=10).status_code == 200


# -- remote URLs -----------------------------------------------------------------


def test_remote_url_form_encoded_with_oauth(emulator: Emulator, clock: FakeClock, image_server: str) -> None:
    answer = requests.post(
        f"{emulator.url}/images",
        auth=OAuth1(KEY, SECRET),
        data={"image_request[locale]": "en-US", "image_request[remote_image_url]": f"{image_server}/chelsea.jpg"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["url"] == f"{image_server}/chelsea.jpg"
    clock.now += 3
    assert poll(emulator, body["token"]).json()["name"] == CAPTIONS["chelsea.jpg"]
    counters = emulator.counters()
    assert counters["remote_submissions"] == 1
    # The same bytes uploaded afterwards are a duplicate submission.
    assert submit(emulator, (SAMPLES / "chelsea.jpg").read_bytes()).status_code == 200
    assert emulator.counters()["duplicates"] == 1


def test_remote_url_json_body_flat_and_nested(emulator: Emulator, image_server: str) -> None:
    for document in (
        {"locale": "en-US", "remote_image_url": f"{image_server}/chelsea.jpg"},
        {"image_request": {"locale": "en-US", "remote_image_url": f"{image_server}/chelsea.jpg"}},
    ):
        answer = requests.post(f"{emulator.url}/images", json=document, headers=SIMPLE, timeout=10)
        assert answer.status_code == 200, answer.text
    assert emulator.counters()["remote_submissions"] == 2


@pytest.mark.parametrize("path", ["/missing.jpg", "/moved"])
def test_remote_url_that_is_not_a_direct_200_is_422(emulator: Emulator, image_server: str, path: str) -> None:
    answer = requests.post(
        f"{emulator.url}/images",
        headers=SIMPLE,
        data={"locale": "en-US", "remote_image_url": image_server + path},
        timeout=10,
    )
    assert (answer.status_code, answer.json()) == (422, {"error": {"remote_image_url": ["could not be fetched"]}})


# -- validation ------------------------------------------------------------------


def test_missing_locale_is_422(emulator: Emulator) -> None:
    answer = requests.post(
        f"{emulator.url}/images", headers=SIMPLE, files={"image": ("a.jpg", noise(), "image/jpeg")}, timeout=10
    )
    assert (answer.status_code, answer.json()) == (422, {"error": {"locale": ["can't be blank"]}})


def test_neither_or_both_image_sources_is_422(emulator: Emulator, image_server: str) -> None:
    neither = requests.post(f"{emulator.url}/images", headers=SIMPLE, data={"locale": "en-US"}, timeout=10)
    assert neither.status_code == 422
    assert list(neither.json()["error"]) == ["image"]
    both = submit(emulator, noise(), remote_image_url=f"{image_server}/chelsea.jpg")
    assert both.status_code == 422
    assert list(both.json()["error"]) == ["remote_image_url"]


def test_undecodable_upload_is_422_and_costs_nothing(emulator: Emulator) -> None:
    answer = submit(emulator, b"GIF89a this is not really an image \x00\x01")
    assert (answer.status_code, answer.json()) == (422, {"error": {"image": ["is invalid"]}})
    assert answer.headers["X-CloudSight-CreditBalance"] == "100000"
    counters = emulator.counters()
    assert (counters["validation_errors"], counters["submissions"]) == (1, 0)


# -- captions and skips -----------------------------------------------------------


@pytest.mark.parametrize("entry", CATALOG, ids=[entry["file"] for entry in CATALOG])
def test_catalog_survives_pipeline_reencoding(entry: dict) -> None:
    for edge in (1024, 512):
        analysis = _vision.analyse(pipeline_copy(SAMPLES / entry["file"], edge))
        assert analysis.caption == entry["caption"]


def test_catalog_hashes_are_far_apart_and_different_images_do_not_match() -> None:
    hashes = [int(entry["phash"], 16) for entry in CATALOG]
    distances = [_vision.hamming(a, b) for i, a in enumerate(hashes) for b in hashes[i + 1 :]]
    assert min(distances) > _vision.MATCH_DISTANCE
    with Image.open(SAMPLES / "astronaut.jpg") as image:
        mirrored = ImageOps.mirror(image.convert("RGB"))
    assert _vision.analyse(jpeg(mirrored)).catalog_file is None
    assert _vision.analyse(noise()).catalog_file is None


def test_orientation_is_applied_before_matching() -> None:
    raw = (SAMPLES / "coffee.jpg").read_bytes()
    with Image.open(SAMPLES / "coffee.jpg") as image:
        assert image.getexif()[0x0112] == 6
        sideways = jpeg(image.convert("RGB"))  # same pixels, orientation tag dropped
    assert _vision.analyse(raw).catalog_file == "coffee.jpg"
    assert _vision.analyse(sideways).catalog_file is None


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (noise((0, 30)), "dark"),
        (noise((228, 255)), "bright"),
        (jpeg(Image.new("RGB", (640, 480), (30, 90, 200))), "blurry"),
        (jpeg(Image.linear_gradient("L").resize((800, 600))), "blurry"),
        (jpeg(Image.radial_gradient("L").resize((800, 600)), quality=50), "blurry"),
    ],
    ids=["dark", "bright", "flat", "gradient", "radial-q50"],
)
def test_skips_over_http(emulator: Emulator, clock: FakeClock, data: bytes, reason: str) -> None:
    token = submit(emulator, data).json()["token"]
    clock.now += 3
    job = poll(emulator, token).json()
    assert (job["status"], job["reason"]) == ("skipped", reason)
    assert "name" not in job


def test_other_images_get_a_plain_description(emulator: Emulator, clock: FakeClock) -> None:
    blue = Image.effect_noise((320, 240), 40).point(lambda v: v // 3)
    image = Image.merge("RGB", (blue, blue, blue.point(lambda v: v + 110)))
    token = submit(emulator, jpeg(image)).json()["token"]
    photo = submit(emulator, noise()).json()["token"]
    clock.now += 3
    assert poll(emulator, token).json()["name"] == "a mostly dark blue image"
    assert poll(emulator, photo).json()["name"] == "a mostly grey image"


# -- faults ----------------------------------------------------------------------


def test_server_error_fault_has_no_effect(emulator: Emulator) -> None:
    emulator.set_faults(Faults(server_error_rate=1.0))
    answer = submit(emulator, noise())
    assert answer.status_code in (500, 502, 503)
    assert "error" in answer.json()
    assert answer.headers["X-CloudSight-CreditBalance"] == "100000"
    counters = emulator.counters()
    assert (counters["server_errors_injected"], counters["submissions"]) == (1, 0)


def test_rate_limit_and_retry_after_window(clock: FakeClock) -> None:
    # On the emulator's clock, moved by hand: the window's edges are exact, however slow the machine.
    with Emulator(key=KEY, secret=SECRET, faults=Faults(rate_limit_rate=1.0, retry_after=0.4), clock=clock) as emulator:
        limited = submit(emulator, noise())
        assert limited.status_code == 429
        assert limited.headers["Retry-After"] == "0.4"  # announces exactly the enforced window
        emulator.set_faults(Faults())
        assert poll(emulator, "x" * 22).status_code == 200  # inside the allowance for requests already in flight
        clock.now += 0.15  # past that allowance
        assert poll(emulator, "x" * 22).status_code == 200  # inside the 0.4 s window
        clock.now += 0.3  # past the window (0.45 s after the 429)
        assert poll(emulator, "x" * 22).status_code == 200  # after it
        counters = emulator.counters()
        assert counters["rate_limited"] == 1
        assert counters["in_retry_after_window"] == 1
        assert counters["submissions"] == 0
        emulator.set_faults(Faults(rate_limit_rate=1.0, retry_after=3))
        assert poll(emulator, "x" * 22).headers["Retry-After"] == "3"


def test_drop_fault_closes_without_answer(emulator: Emulator) -> None:
    emulator.set_faults(Faults(drop_rate=1.0))
    with pytest.raises(requests.ConnectionError):
        submit(emulator, noise())
    emulator.set_faults(Faults())
    assert submit(emulator, noise()).status_code == 200
    counters = emulator.counters()
    assert (counters["dropped"], counters["submissions"], counters["requests"]) == (1, 1, 2)


def test_slow_fault_delays_after_processing(emulator: Emulator) -> None:
    emulator.set_faults(Faults(slow_rate=1.0, slow_seconds=0.3))
    started = time.monotonic()
    answer = submit(emulator, noise())
    assert answer.status_code == 200
    assert time.monotonic() - started >= 0.3
    assert emulator.counters()["submissions"] == 1


def test_timeout_fault_then_repost_completes(emulator: Emulator, clock: FakeClock) -> None:
    emulator.set_faults(Faults(timeout_rate=1.0))
    token = submit(emulator, (SAMPLES / "retina.jpg").read_bytes()).json()["token"]
    clock.now += 2
    assert poll(emulator, token).json()["status"] == "timeout"
    emulator.set_faults(Faults())
    assert repost(emulator, token).status_code == 200
    clock.now += 2
    assert poll(emulator, token).json()["name"] == CAPTIONS["retina.jpg"]
    assert emulator.counters()["first_seen_completed_at"][token] == clock.now


# -- counters, credits, plumbing -------------------------------------------------


def test_duplicates_and_credit_header(clock: FakeClock) -> None:
    with Emulator(key=KEY, secret=SECRET, credits=2, clock=clock) as emulator:
        data = noise()
        balances = [submit(emulator, d).headers["X-CloudSight-CreditBalance"] for d in (data, noise(), data)]
        assert balances == ["1", "0", "0"]
        assert poll(emulator, "x" * 22).headers["X-CloudSight-CreditBalance"] == "0"
        counters = emulator.counters()
        assert (counters["submissions"], counters["duplicates"]) == (3, 1)
        emulator.reset_counters()
        assert emulator.counters()["submissions"] == 0


def test_keep_alive_and_stop_closes_connections() -> None:
    emulator = Emulator(key=KEY, secret=SECRET).start()
    session = requests.Session()
    first = session.get(f"{emulator.url}/images/{'x' * 22}", headers=SIMPLE, timeout=5)
    second = session.get(f"{emulator.url}/images/{'y' * 22}", headers=SIMPLE, timeout=5)
    assert first.raw.version == 11 and second.status_code == 200
    assert first.headers["Content-Length"] == str(len(first.content))
    emulator.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(f"{emulator.url}/images/{'x' * 22}", headers=SIMPLE, timeout=5)


def test_multipart_parser_keeps_binary_parts_exact() -> None:
    payload = bytes(range(256)) + b"\r\n--almost\r\n\r\n--" + bytes(range(255, -1, -1))
    boundary = "XyZ123"
    body = (
        b'--XyZ123\r\nContent-Disposition: form-data; name="image_request[locale]"\r\n\r\nen-US\r\n'
        b'--XyZ123\r\nContent-Disposition: form-data; name="image_request[image]"; filename="a b.jpg"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + payload + b"\r\n--XyZ123--\r\n"
    )
    form = parse_body(f"multipart/form-data; boundary={boundary}", body, "")
    assert form.get("locale") == "en-US"
    upload = form.file("image")
    assert upload is not None and upload.content == payload and upload.filename == "a b.jpg"


def test_parse_latency() -> None:
    assert parse_latency("6-12") == (6.0, 12.0)
    assert parse_latency(" 0.5 ") == (0.5, 0.5)
    for bad in ("", "fast", "12-6", "-1", "1-2-3"):
        with pytest.raises(ValueError, match="latency"):
            parse_latency(bad)


@pytest.mark.slow
def test_serve_prints_url_and_stops_on_interrupt() -> None:
    code = (
        "from tagger.emulator import serve, Faults\n"
        "serve('127.0.0.1', 0, key='k1', secret='s1', latency=(0.1, 0.1), ttl=60.0,"
        " faults=Faults(), credits=5, seed=1)\n"
    )
    process = subprocess.Popen([sys.executable, "-P", "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip().rsplit(" ", 1)[-1]
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", url)
        assert process.stdout.readline().strip() == "API key: k1"
        answer = requests.get(f"{url}/images/{'x' * 22}", headers={"Authorization": "CloudSight k1"}, timeout=5)
        assert answer.headers["X-CloudSight-CreditBalance"] == "5"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_body_without_content_length_is_refused(emulator: Emulator) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"locale=en-US"

    answer = requests.post(
        f"{emulator.url}/images",
        data=chunks(),
        headers={**SIMPLE, "Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert answer.status_code == 411
    assert answer.headers["Connection"] == "close"
    assert emulator.counters()["submissions"] == 0
