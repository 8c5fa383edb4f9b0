"""The exit status of every `palmares` command, in one place (documented in README.md).

A command exits OK only when everything it was asked to do was done. Scripts at the sites (and
the coordinating centre's cron jobs) branch on these numbers, so they never change meaning.
"""

from __future__ import annotations

#: Everything asked was done (or was already done: re-running an import changes nothing).
OK = 0
#: Refused (a PalmaresError or a ClickException: nothing written), or none of the work asked for
#: succeeded (e.g. every feature set of a batch failed: the failures are stored with their reasons).
REFUSED = 1
#: The command line itself is wrong (unknown option, missing argument): click's usage error.
USAGE = 2
#: Partial success: some of the work went in, some did not (e.g. the PET was imported and the CT
#: failed; some feature sets of a batch failed). The output lists what did not.
PARTIAL = 3
#: A bug: an unexpected exception (one line on stderr, the traceback in the log file).
INTERNAL = 4
#: Interrupted by Ctrl-C (128 + SIGINT, the shell's convention); finished work is kept.
INTERRUPTED = 130


def for_outcome(done_any: bool, failed_any: bool) -> int:
    """OK when nothing failed, PARTIAL when some work went in and some failed, else REFUSED."""
    if not failed_any:
        return OK
    return PARTIAL if done_any else REFUSED
