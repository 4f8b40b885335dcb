"""MySQL/MariaDB ``LOAD DATA LOCAL INFILE``: the server may read one file, named by us.

With ``LOCAL``, the *server* names the file the client then sends, so a client that
allows it to any server query would hand a hostile or compromised server any file the
daemon can read (its secrets). The store's connections advertise the capability, and
this guard sends a file only while :func:`allowed` names it for that connection: a
``store`` target's bulk load of a batch it wrote itself (PyMySQL's ``_send_local_file``
is wrapped). Where the driver has no such hook, the capability is never advertised and
``allowed`` answers False, so the target keeps its ``INSERT`` path.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_installed = False
_lock = threading.Lock()


def install() -> bool:
    """Wrap PyMySQL's file sender once; False where this PyMySQL has none to wrap."""
    global _installed
    with _lock:
        if _installed:
            return True
        try:
            from pymysql import connections, err
        except ImportError:
            return False
        send = getattr(connections, "_send_local_file", None)
        if send is None:
            return False

        def guarded(filename: str | bytes, conn: Any) -> Any:
            if os.fsdecode(filename) != getattr(conn, "_syncd_local_file", None):
                raise err.OperationalError(2000, f"refused to send local file {filename!r}: "
                                                 "syncd sends only the batch it loads")
            return send(filename, conn)

        connections._send_local_file = guarded
        _installed = True
        return True


@contextmanager
def allowed(conn: Any, path: str) -> Iterator[bool]:
    """Within: ``conn`` may send ``path`` (and nothing else); yields False where it may
    not send files at all."""
    if not (_installed and getattr(conn, "_local_infile", False)):
        yield False
        return
    conn._syncd_local_file = path
    try:
        yield True
    finally:
        conn._syncd_local_file = None
