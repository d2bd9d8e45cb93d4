"""``tencent-chat-robots`` as a process of its own, for what CliRunner cannot do: signals."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading

# The console script's own entry point, without relying on the script being on PATH.
ENTRY = "from tencent_chat_robots.cli import main; main()"
TIMEOUT = 60


class CliProcess:
    """The command running; its stderr is read line by line as it comes."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", ENTRY, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        )
        self._stderr_lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        self._stdout: list[str] = []
        self._readers = [
            threading.Thread(target=self._read_stderr, daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)
            self._stderr_lines.put(line)
        self._stderr_lines.put(None)

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        self._stdout.append(self.process.stdout.read())

    def wait_for_stderr(self, fragment: str) -> str:
        """The first line of stderr (from here on) containing ``fragment``."""
        while True:
            line = self._stderr_lines.get(timeout=TIMEOUT)
            if line is None:
                raise AssertionError(f"stderr ended without {fragment!r}:\n{''.join(self._stderr)}")
            if fragment in line:
                return line

    def finish(self) -> tuple[int, str, str]:
        """Exit code, stdout and stderr, once the process has ended."""
        code = self.process.wait(timeout=TIMEOUT)
        for reader in self._readers:
            reader.join(timeout=TIMEOUT)
        return code, "".join(self._stdout), "".join(self._stderr)

    def kill(self) -> None:
        """End the process if a failed test left it running."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=TIMEOUT)
