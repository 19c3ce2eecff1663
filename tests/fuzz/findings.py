"""What a harness does with a finding.

By default a finding raises ``Finding``: libFuzzer stops and writes the input to a
``crash-<sha1>`` file, which is what a short CI run wants. With ``FUZZ_KEEP_GOING=1`` (long runs,
while known findings are still open) each kind of finding is printed once, its first input is
written to ``$FUZZ_FINDINGS_DIR`` (default ``fuzz-findings/``), and fuzzing goes on.
"""

import hashlib
import os
import re
import sys
import traceback


class Finding(AssertionError):
    """A loader or constructor broke its contract on a fuzzer input."""


def exception_kind(where, e):
    """A short name for an unexpected exception; a panic's message tells panics apart."""
    kind = f"{where} raised {type(e).__name__}"
    if type(e).__name__ == "PanicException":
        kind += f" ({str(e).splitlines()[0][:80]})"
    return kind


def gist(error, path=None):
    """An error's type and the start of its message, without numbers or `path`: what tells
    one kind of finding from another."""
    message = str(error).replace(path, "<file>") if path else str(error)
    return f"{type(error).__name__}: {re.sub(r'[0-9]+', 'N', message)[:48]}"


class Findings:
    def __init__(self, harness):
        self.harness = harness
        self.keep_going = os.environ.get("FUZZ_KEEP_GOING") == "1"
        self.folder = os.environ.get("FUZZ_FINDINGS_DIR", "fuzz-findings")
        self.seen = set()

    def report(self, kind, detail, data):
        message = f"{kind}: {detail!r}"[:2000]
        if isinstance(detail, BaseException):  # where it was raised, inside the library
            message += "\n" + "".join(traceback.format_exception(detail)[-6:])[-3000:]
        if not self.keep_going:
            raise Finding(message)
        if kind in self.seen:
            return
        self.seen.add(kind)
        os.makedirs(self.folder, exist_ok=True)
        name = f"{self.harness}-{hashlib.sha1(data).hexdigest()[:12]}"
        with open(os.path.join(self.folder, name), "wb") as f:
            f.write(data)
        with open(os.path.join(self.folder, name + ".txt"), "w", encoding="utf-8") as f:
            f.write(message + "\n")
        print(f"\nFINDING [{name}] {message}", file=sys.stderr, flush=True)
