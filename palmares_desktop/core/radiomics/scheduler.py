"""An existing Dask scheduler given by the user: its address checked, and probed with a timeout.

Dask's own `Client(address, timeout=...)` does not bound every failure: pointed at a web server it
waits for a handshake that never comes (over 150 s seen), an unroutable address can end in "Unable
to allocate 3.07 EiB", and a malformed one in a traceback. So before Dask is asked, we open one TCP
connection ourselves and read the greeting a Dask scheduler sends first on every new connection
(a length-prefixed frame list); anything else is refused in one sentence.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import struct
from collections.abc import Iterator

from palmares_desktop.core.radiomics.errors import BatchError

#: Time allowed to reach the scheduler and to receive its greeting: a scheduler on the site's network
#: answers in milliseconds, so this only bounds the wait for an address that will never answer.
SCHEDULER_TIMEOUT_S = 5.0

_ADDRESS = re.compile(
    r"(?:tcp://)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):(?P<port>[0-9]{1,5})"
)
_FORM = "give it as tcp://HOST:PORT or HOST:PORT, e.g. tcp://10.0.0.5:8786"


def parse_scheduler(address: str) -> tuple[str, int]:
    """(host, port) of a scheduler address in the form tcp://host:port or host:port."""
    text = (address or "").strip()
    match = _ADDRESS.fullmatch(text)
    if not match:
        raise BatchError(f"{address!r} is not a Dask scheduler address: {_FORM}.")
    port = int(match["port"])
    if not 0 < port < 65536:
        raise BatchError(f"Port {port} of the scheduler address {address!r} is not between 1 and 65535.")
    return match["host"].strip("[]"), port


def check_scheduler(address: str, timeout_s: float = SCHEDULER_TIMEOUT_S) -> str:
    """Refuse, in one sentence and within about 2 x `timeout_s`, an address where no Dask scheduler
    answers; returns the address in Dask's form (tcp://host:port)."""
    host, port = parse_scheduler(address)
    normal = f"tcp://{host}:{port}" if ":" not in host else f"tcp://[{host}]:{port}"
    where = f"the Dask scheduler at {normal}"
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            greeting = _read_some(sock, 24)
    except socket.gaierror:
        raise BatchError(f"Cannot reach {where}: the host name {host!r} is not known.") from None
    except ConnectionRefusedError:
        raise BatchError(f"Cannot reach {where}: nothing is listening on port {port}.") from None
    except TimeoutError:
        raise BatchError(
            f"Cannot reach {where}: no answer within {timeout_s:g} s (check the address and that this "
            "machine can reach it)."
        ) from None
    except OSError as exc:
        raise BatchError(f"Cannot reach {where}: {exc.strerror or exc}.") from None
    if not _looks_like_dask(greeting):
        raise BatchError(
            f"Something is listening at {normal}, but it is not a Dask scheduler (no Dask greeting "
            f"within {timeout_s:g} s; a web server, or the dashboard port 8787?). The scheduler "
            "usually listens on port 8786."
        )
    return normal


def _read_some(sock: socket.socket, n: int) -> bytes:
    """Up to n bytes; b"" when the peer sends nothing before the timeout (a web server waits for
    the request) or closes."""
    data = b""
    try:
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pass
    return data


def _looks_like_dask(greeting: bytes) -> bool:
    # distributed's TCP framing: total length (uint64 LE), number of frames, frame lengths.
    if len(greeting) < 24:
        return False
    total, n_frames, first = struct.unpack("<QQQ", greeting[:24])
    return 0 < total < 1 << 20 and 0 < n_frames <= 64 and 0 < first <= total


@contextlib.contextmanager
def quiet_dask() -> Iterator[None]:
    """Silence Dask's (and its event loop's) loggers while a cluster or client closes: connections
    torn down on purpose log CommClosedError / "Stream is closed" tracebacks that mean nothing
    to the user (the results are stored)."""
    prefixes = ("distributed", "tornado", "asyncio")
    # Every existing logger under those names: Dask's configuration gives some children a level of
    # their own, which a level set on the parent would not override.
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in prefixes]
    loggers = [logging.getLogger(n) for n in {*prefixes, *names}]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
