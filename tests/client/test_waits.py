"""Every wait has a bound and a word: Retry-After, a trickling answer, settings that could exhaust the machine."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import config_for, run_config

from tagger.client import cloudsight as cs
from tagger.config import Config, load_config
from tagger.emulator import Emulator, Faults
from tagger.errors import UsageError
from tagger.pipeline.runner import make_api

FAST = {"first_poll_delay": 0.1, "poll_interval": 0.05, "max_poll_interval": 0.2}


def run_bounded(config, paths, seconds: float):
    """A library run in a thread: (result, seconds taken); fails the test when it is still running after ``seconds``."""
    out: dict = {}

    def go() -> None:
        try:
            out["result"] = run_config(config, paths)
        except BaseException as exc:  # handed to the test
            out["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the run was still waiting after {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["result"], time.monotonic() - started


def test_a_retry_after_longer_than_max_retry_after_is_an_outage_said_and_stopped(photos, tmp_path):
    with Emulator(latency=(0.05, 0.1), faults=Faults(rate_limit_rate=1.0, retry_after=300), seed=3) as emu:
        config = config_for(emu, tmp_path, fast=FAST, max_retry_after=60.0)
        result, took = run_bounded(config, [photos], 60)
        requests = emu.counters()["requests"]
    assert result.exit_code == 3
    assert result.stopped and "Retry-After" in result.stopped and "max_retry_after (60 s)" in result.stopped
    assert "300" in result.stopped
    assert result.counts["failed"] == 0 and result.counts["completed"] == 0 and result.counts["pending"] >= 1
    assert requests <= 4  # not retried: one probe, and what was already on its way
    con = sqlite3.connect(config.ledger_path)
    assert {s for (s,) in con.execute("SELECT state FROM jobs")} == {"queued"}
    con.close()


@pytest.mark.slow
def test_a_retry_after_within_max_retry_after_is_still_obeyed(photos, tmp_path):
    faults = Faults(outage_requests=2, outage_status=503, outage_retry_after=0.5)
    with Emulator(latency=(0.05, 0.1), faults=faults, seed=3) as emu:
        config = config_for(emu, tmp_path, fast=FAST, max_retry_after=1.0)
        result, _ = run_bounded(config, [photos], 60)
        assert emu.counters()["in_retry_after_window"] == 0
    assert result.exit_code == 0, result.stopped


@pytest.mark.parametrize(
    "flags, key",
    [
        ({"workers": 10**9}, "workers"),
        ({"max_in_flight": 10**6}, "max_in_flight"),
        ({"max_pixels": 10**12}, "max_pixels"),
    ],
)
def test_settings_that_could_exhaust_the_machine_are_refused(flags, key):
    with pytest.raises(UsageError, match=f"{key} is .*at most") as refused:
        load_config(None, flags, {})
    assert "\n" not in str(refused.value)


def test_a_float_workers_from_a_config_file_is_bounded_too(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[run]\nworkers = 1e9\n")
    with pytest.raises(UsageError, match="workers .* at most 64"):
        load_config(str(cfg), {}, {})


@pytest.mark.parametrize("endpoint", ["api.cloudsight.ai/v1", "ftp://host/v1", "https:///v1", "localhost:8765"])
def test_an_endpoint_that_is_no_http_url_is_refused_at_config_time(endpoint):
    with pytest.raises(UsageError, match="endpoint must be a URL"):
        load_config(None, {"endpoint": endpoint}, {})


class Trickle:
    """A server that answers every request one byte every ``gap`` seconds (headers, then body): each read is quick."""

    def __init__(self, gap: float, *, headers_too: bool) -> None:
        self.gap = gap
        self.headers_too = headers_too
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.closed = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        body = b'{"token": "abc", "status": "not completed"}' + b" " * 200
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        try:
            conn.recv(65536)
            if not self.headers_too:
                conn.sendall(head)
            for i in range(len(head) * self.headers_too + len(body)):
                data = (head + body) if self.headers_too else body
                conn.sendall(data[i : i + 1])
                if self.closed.wait(self.gap):
                    return
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.closed.set()
        self.sock.close()


@pytest.mark.parametrize("headers_too", [False, True], ids=["body", "headers"])
@pytest.mark.slow
def test_a_trickled_answer_is_cut_off_at_the_request_deadline(headers_too):
    server = Trickle(0.05, headers_too=headers_too)  # ~250 bytes: 12 s at this pace, each read 0.05 s
    try:
        config = Config(api_key="k", endpoint=server.url, request_timeout=1.0, request_deadline=1.5)
        with make_api(config) as api:
            started = time.monotonic()
            with pytest.raises(cs.NetworkError, match="did not answer in time") as failed:
                api.image_response("abc")
            took = time.monotonic() - started
    finally:
        server.close()
    assert 1.4 <= took < 3.0, took
    assert failed.value.retryable and failed.value.ambiguous  # the request may have been received


def crafted_tiff(path: Path, strips: int = 200_000, block: int = 1 << 20) -> Path:
    """A valid-looking TIFF whose every strip is the same 1 MiB: hashing it reads 200 GB."""
    ifd_at, n = 8, 5
    offsets_at = ifd_at + 2 + n * 12 + 4
    counts_at = offsets_at + 4 * strips
    data_at = counts_at + 4 * strips
    out = bytearray(b"II*\0" + struct.pack("<I", ifd_at) + struct.pack("<H", n))
    out += struct.pack("<HHII", 256, 4, 1, 100) + struct.pack("<HHII", 257, 4, 1, 100)
    out += struct.pack("<HHIHH", 259, 3, 1, 1, 0)
    out += struct.pack("<HHII", 273, 4, strips, offsets_at) + struct.pack("<HHII", 279, 4, strips, counts_at)
    out += struct.pack("<I", 0) + struct.pack(f"<{strips}I", *([data_at] * strips))
    out += struct.pack(f"<{strips}I", *([block] * strips)) + bytes(block)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(out)
    return path


def dry_run(photos: Path, tmp_path: Path, time_limit: float) -> subprocess.Popen:
    cfg = tmp_path / "limits.toml"
    cfg.write_text(f"[prepare]\nprepare_time_limit = {time_limit}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDSIGHT_", "TAGGER_"))}
    args = [sys.executable, "-P", "-m", "tagger", "--config", str(cfg), "run", str(photos), "--dry-run"]
    args += ["--ledger", str(tmp_path / "ledger.sqlite"), "--quiet"]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_the_dry_run_reads_a_crafted_tiff_under_the_real_runs_time_limit(photos, tmp_path):
    crafted_tiff(photos / "crafted.tif")
    started = time.monotonic()
    proc = dry_run(photos, tmp_path, 2.0)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert time.monotonic() - started < 40
    assert "6 credits would be spent" in out  # the six photos; the crafted file is not counted as sendable


@pytest.mark.slow
def test_a_signal_stops_the_dry_run_within_the_grace_even_mid_read(photos, tmp_path):
    from tagger.pipeline.dispatch import STOP_GRACE

    crafted_tiff(photos / "crafted.tif")
    proc = dry_run(photos, tmp_path, 600.0)
    try:
        time.sleep(4)  # started, and hashing the crafted file
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - signalled
    finally:
        proc.kill()
    assert proc.returncode == 3, err
    assert took < STOP_GRACE + 1, took
    assert "interrupted" in out and "nothing was sent" in out


@pytest.mark.slow
def test_a_photo_replaced_by_a_fifo_after_upload_does_not_hang_the_sidecar_writer(photos, tmp_path):
    with Emulator(latency=(1.5, 2.0), seed=4) as emu:
        config = config_for(emu, tmp_path, fast=FAST)
        out: dict = {}
        thread = threading.Thread(target=lambda: out.update(result=run_config(config, [photos])), daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while emu.counters()["submissions"] < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert emu.counters()["submissions"] == 6
        victim = photos / "IMG_0000.JPG"
        victim.unlink()
        os.mkfifo(victim)  # uploaded, then replaced: the sidecar writer would read it again
        thread.join(60)
        assert not thread.is_alive(), "the sidecar writer hung on a FIFO"
    result = out["result"]
    assert result.counts["completed"] == 6
    written = sorted(p.name for p in photos.rglob("*.xmp"))
    assert len(written) == 6 and "IMG_0000.JPG.xmp" in written  # its caption written, without reading the FIFO
