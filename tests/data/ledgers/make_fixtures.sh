#!/usr/bin/env bash
# Make a ledger with the tagger of COMMIT: make_fixtures.sh COMMIT OUT.sqlite (run from the repository).
set -euo pipefail
commit=$1; out=$(realpath -m "$2")
src=$(mktemp -d); archive=/tmp/tagger-fixture/archive
git archive "$commit" tagger migrations | tar -x -C "$src"
cp -r "$src/migrations" "$src/tagger/migrations"    # the wheel ships migrations/ inside the package
rm -rf /tmp/tagger-fixture && mkdir -p "$archive/2019"
cp sample_images/*.jpg sample_images/*.png "$archive/"
mv "$archive/rocket.jpg" "$archive/2019/"
cp "$archive/coffee.jpg" "$archive/2019/copy_of_coffee.jpg"
head -c 5000 "$archive/coffee.jpg" > "$archive/broken.jpg"
rm -f "$out" "$out-wal" "$out-shm"
(cd /tmp && PYTHONPATH="$src" python -m tagger run "$archive" --emulator --ledger "$out" \
    --sidecar-dir /tmp/tagger-fixture/sidecars --quiet) || test $? -eq 1    # 1: broken.jpg failed, as intended
python - "$out" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1]); c.execute("PRAGMA wal_checkpoint(TRUNCATE)"); c.close()
PY
rm -f "$out.lock" "$out-wal" "$out-shm"
