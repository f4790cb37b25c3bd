"""External commands that die with protlab, even when protlab is killed with SIGKILL.

A tool such as MMseqs2 runs workflows of its own (a shell script starting ``mmseqs
prefilter``, ``align``, ...); killing only the command protlab started would leave those
running, writing into a scratch directory nobody removes. A :class:`Tether` therefore

* runs each command in a session of its own, so that its process group holds every process
  it starts, and kills that group when the waiting Python code is interrupted;
* starts one watchdog (``sh``, in a session of its own, so that a signal to protlab's group
  misses it) reading a pipe that only this process writes: when this process ends in any
  way, SIGKILL included, the pipe closes and the watchdog kills the running command's group
  and removes the scratch directory;
* on Linux also gives each command PR_SET_PDEATHSIG, which covers the moment between its
  start and the watchdog learning its group.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from pathlib import Path

_WATCHDOG = r"""
group=
while IFS= read -r line; do
  case $line in
    done) exit 0 ;;
    -) group= ;;
    *) group=$line ;;
  esac
done
[ -n "$group" ] && kill -KILL "-$group" 2>/dev/null  # dash takes no "--"
if [ -n "$1" ]; then
  rm -rf -- "$1" 2>/dev/null || { sleep 1; rm -rf -- "$1"; }
fi
exit 0
"""


def _parent_death_signal():
    """A preexec function giving the child SIGKILL when its parent dies (Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the forked child
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(1)

    return preexec


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


class Tether:
    """Runs commands one at a time; ``scratch`` (a directory) is removed by the watchdog when
    this process dies while the tether is open. Use as a context manager."""

    def __init__(self, scratch: str | Path | None = None):
        self.scratch = scratch
        self._watchdog: subprocess.Popen | None = None
        self._pipe: int | None = None

    def __enter__(self) -> "Tether":
        if os.name == "posix":
            read, self._pipe = os.pipe()  # not inheritable: the commands never hold the write end
            try:
                self._watchdog = subprocess.Popen(
                    ["/bin/sh", "-c", _WATCHDOG, "protlab-watchdog", str(self.scratch or "")], stdin=read,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            finally:
                os.close(read)
        return self

    def _tell(self, word: str) -> None:
        if self._pipe is not None:
            with contextlib.suppress(OSError):  # a dead watchdog: the commands still run
                os.write(self._pipe, f"{word}\n".encode())

    def run(self, cmd: list[str]) -> subprocess.CompletedProcess:
        """``cmd`` to its end, output captured as text (``subprocess.run``'s result)."""
        posix = os.name == "posix"
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=posix, preexec_fn=_parent_death_signal() if posix else None)
        self._tell(str(proc.pid))
        try:
            out, err = proc.communicate()
        except BaseException:  # Ctrl-C, SIGTERM turned into an exception: the whole group goes
            if posix:
                _kill_group(proc.pid)
            proc.kill()
            proc.wait()
            raise
        finally:
            self._tell("-")
        return subprocess.CompletedProcess(cmd, proc.returncode, out, err)

    def __exit__(self, *exc) -> None:
        if self._pipe is not None:
            self._tell("done")
            os.close(self._pipe)
            self._pipe = None
        if self._watchdog is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._watchdog.wait(timeout=10)
            self._watchdog = None
