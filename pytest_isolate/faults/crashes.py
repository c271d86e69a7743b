"""Why a worker process ended: its exit status in words, for the crashed test's report.

xdist says only that a worker "crashed"; a user needs the signal or exit code, and a hint at
the usual cause, to know where to look.
"""

from __future__ import annotations

import signal

# The usual causes, for the signals a crashed test run typically ends with.
HINTS = {
    signal.SIGSEGV: "a segmentation fault, usually in C code or an extension module",
    signal.SIGBUS: "a bus error, usually in C code or an extension module",
    signal.SIGABRT: "abort(), usually a failed assertion in C code",
    signal.SIGKILL: "killed from outside, often by the kernel's out-of-memory killer",
    signal.SIGTERM: "asked to terminate from outside",
    signal.SIGFPE: "an arithmetic fault in C code",
}


def describe_exit(returncode: int | None) -> str | None:
    """``returncode`` as subprocess reports it (negative: killed by that signal), in words."""
    if returncode is None:
        return None
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode)
        except ValueError:
            return f"killed by signal {-returncode}"
        hint = HINTS.get(sig)
        return f"killed by {sig.name} (signal {sig.value})" + (f": {hint}" if hint else "")
    return f"exited with code {returncode} (os._exit() or sys.exit() in a test or fixture?)"


#: The failure of a test that never ran (its workers crashed, restarts used up): not a test
#: that failed, so never rerun as one.
NEVER_RAN = "not run: its workers crashed and --max-worker-restart allows no more"
