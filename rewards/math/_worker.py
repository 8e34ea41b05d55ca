"""Entry point of one grading worker process (started by :mod:`rewards.math.bounded`).

``python -m rewards.math._worker READ_FD WRITE_FD MEMORY_BYTES``: receives ``(task_id, function,
args)`` on READ_FD, answers ``(task_id, "ok", result)`` or ``(task_id, "error", message)`` on
WRITE_FD, and exits when the parent closes its end. Only the parent process writes to READ_FD.
"""

from __future__ import annotations

import signal
import sys
from multiprocessing.connection import Connection


def main(argv: list[str]) -> None:
    read_fd, write_fd, memory_bytes = (int(a) for a in argv[:3])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    except (ImportError, ValueError, OSError):  # not on every platform; the timeout still holds
        pass
    inbox, outbox = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    import rewards.math.equiv  # noqa: F401  (sympy and latex2sympy2, before the first timed task)

    outbox.send("ready")
    while True:
        try:
            task_id, fn, args = inbox.recv()
        except (EOFError, OSError):
            return
        try:
            reply = (task_id, "ok", fn(*args))
        except BaseException as err:  # report, stay alive for the next task
            reply = (task_id, "error", f"{type(err).__name__}: {err}")
        outbox.send(reply)


if __name__ == "__main__":
    main(sys.argv[1:])
