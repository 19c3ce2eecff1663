#!/usr/bin/env bash
# Quick rebuild for development: compiles the extension and drops it into the source tree used by
# an editable install (`pip install -e .`). Release wheels come from `pip install .`.
set -euo pipefail
cd "$(dirname "$0")"
profile=${1:-dev}
cargo build --lib --profile "$profile"
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
# Rename into place so running test processes keep their mapped copy.
cp "target/$dir/lib_C.so" python/ferrotorch/.C.tmp.so
mv -f python/ferrotorch/.C.tmp.so python/ferrotorch/_C.abi3.so
