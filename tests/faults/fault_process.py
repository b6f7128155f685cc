"""A consumer process under test: started, SIGKILLed, stopped and read back.

Shared by the fault modules; the process itself is ``fault_service.py``.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path


class ChildProcess:
    """One child process writing its output to ``log``."""

    #: How long a SIGTERM may take (the component's own stop) before it counts as hung.
    stop_timeout_s = 15.0

    def __init__(
        self, argv: Sequence[str], log: Path, *, env: dict[str, str] | None = None,
        stdin: bool = False,
    ) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            list(argv), stdin=subprocess.PIPE if stdin else None, stdout=log.open("ab"),
            stderr=subprocess.STDOUT, env=env,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> bool:
        """SIGTERM, then SIGKILL if it hangs; True if it stopped by itself in time."""
        if not self.alive():
            return True
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return False
        return True

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self) -> str:
        return self.text()[-4000:]
