"""Subprocesses of the bench (gateway, workers) with their logs; their memory and CPU from /proc."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


class ProcessDied(RuntimeError):
    pass


@dataclass(frozen=True)
class Memory:
    rss_kib: int
    """VmRSS: resident now."""
    hwm_kib: int
    """VmHWM: the peak resident size so far."""


def memory_of(pid: int) -> Memory:
    """The process's resident and peak resident memory, from ``/proc/<pid>/status``."""
    fields: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = int(value.split()[0])  # "  123456 kB"
    return Memory(rss_kib=fields["VmRSS"], hwm_kib=fields["VmHWM"])


class ManagedProcess:
    """One subprocess, its output in ``<log_dir>/<name>.log``; stopped with SIGTERM, then SIGKILL."""

    def __init__(
        self, name: str, command: list[str], *, log_dir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                self.command,
                cwd=REPO_ROOT,
                env=self.env if self.env is not None else dict(os.environ),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        assert self._process is not None, "not started"
        return self._process.pid

    def memory(self) -> Memory:
        return memory_of(self.pid)

    def check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            tail = self.log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise ProcessDied(f"{self.name} exited with code {self._process.returncode}:\n{tail}")

    def stop(self, timeout: float = 30.0) -> None:
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used, from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # After "pid (comm)": state is fields[0], utime fields[11], stime fields[12].
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_children(name: str) -> list[int]:
    """Pids of this process's direct children whose command name is ``name`` (e.g. the dev server)."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                text = stat.read()
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        parent = int(text.rsplit(")", 1)[1].split()[1])
        if parent == me and comm == name:
            found.append(int(entry))
    return found


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for the gateway and the Temporal servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
