"""PID 1 of a lab container (harness/backends/dockerhost.py): it only reaps.

The lab starts each daemon with `docker exec` and the shell that started it exits, so the daemon is re-parented to
PID 1. Without a PID 1 that waits for its children, a daemon killed with SIGKILL would stay a zombie: `kill -0`
would still find it and the lab would think it alive. SIGTERM ends the container at once (`docker stop`).
"""

import os
import signal
import sys


def main() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT})
    while True:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        if signal.sigwait({signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}) != signal.SIGCHLD:
            sys.exit(0)


if __name__ == "__main__":
    main()
