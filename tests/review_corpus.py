"""A held archive for the review tests: photos captioned by the emulator under ``hold``, nothing written yet."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tagger.config import Config
from tagger.emulator import Emulator
from tagger.pipeline.runner import make_api, run

FAST = {"first_poll_delay": 0.1, "poll_interval": 0.05, "max_poll_interval": 0.2, "retry_budget": 20.0}

#: A caption a hostile (or merely odd) answer could hold: it must show as text, never run.
HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script> & "quotes"'


def held_archive(emu: Emulator, photos: Path, tmp_path: Path, *, hostile: str | None = None) -> Config:
    """Run ``photos`` through ``emu`` with hold on; ``hostile``: the answer one photo (IMG_0004) got instead."""
    config = Config(
        **{**FAST, "api_key": emu.key, "endpoint": emu.url, "ledger": str(tmp_path / "ledger.sqlite"), "hold": True}
    )
    with make_api(config) as api:
        result = run(config, [str(photos)], api=api)
    assert result.exit_code == 0
    if hostile is not None:
        # As if the service had answered it: the ledger holds what came back, as it came.
        con = sqlite3.connect(config.ledger_path)
        with con:
            n = con.execute(
                "UPDATE jobs SET caption = ?, keywords = ? WHERE id = (SELECT job_id FROM files WHERE name = ?)",
                (hostile, '["<b>bold</b>"]', b"IMG_0004.JPG"),
            ).rowcount
        con.close()
        assert n == 1
    return config
