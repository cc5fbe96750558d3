"""Run the real idle agent (as the boot ships it) over simulated time, in a scratch root.

The desktop around the agent is faked where the agent looks: ``/proc`` and ``/sys``
files under ``DLD_ROOT`` that :meth:`Desktop.minute` advances, stub ``dcv``,
``nvidia-smi`` and ``systemctl`` on PATH, and a local IMDSv2 server on 127.0.0.1. The
clock is Debian's libfaketime (of ``faketime``), preloaded into each run, so the agent's own
``time.time()`` sees the simulated time. Used by tests/test_idle_agent.py and by the
benchmarks.

A run is a fork of a warm interpreter (:class:`Zygote`) unless the desktop asks for a
fresh ``python3 -IS`` per run (``fork=False``): starting the interpreter and importing the
agent's modules is three quarters of a run's CPU, the same every time, and a thousand runs
paid it. The forked run executes the file as the interpreter would (as ``__main__``, with
its argv, environment, stdio and exit status), under the same libfaketime.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http import HTTPStatus
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cloud_init.render import shipped  # noqa: E402

#: Monday 30 November 2026, 00:00 UTC.
MIDNIGHT = 1_795_996_800
HZ = 100
#: The interpreter that runs the agent (Ubuntu 20.04 has Python 3.8: set this to check it).
PYTHON = os.environ.get("IDLE_AGENT_PYTHON", sys.executable)
TOKEN = "imds-token-for-tests"

_STUB = r"""#!/bin/sh
# POSIX sh with builtins only on the usual path: the agent calls a stub twice a run and
# the tests run it about a thousand times (bash and cat would double the stubs' cost).
name="${0##*/}"
printf '%s %s\n' "$name" "$*" >>"$STUB_DIR/calls"
if [ -f "$STUB_DIR/$name.sleep" ]; then read -r seconds <"$STUB_DIR/$name.sleep"; sleep "$seconds"; fi
# One answer per call from a .seq file, then the .out file.
if [ -s "$STUB_DIR/$name.seq" ]; then
  head -n 1 "$STUB_DIR/$name.seq"
  sed -i 1d "$STUB_DIR/$name.seq"
  exit 0
fi
if [ -f "$STUB_DIR/$name.rc" ]; then read -r code <"$STUB_DIR/$name.rc"; exit "$code"; fi
# Every line of the .out file (a last line without a newline gets one, as the real
# commands end their output).
if [ -f "$STUB_DIR/$name.out" ]; then
  while IFS= read -r line || [ -n "$line" ]; do printf '%s\n' "$line"; done <"$STUB_DIR/$name.out"
fi
exit 0
"""


def faketime() -> str:
    """The faketime program: required, never skipped (tests/run installs Debian's faketime)."""
    found = shutil.which("faketime")
    assert found, "faketime is required (Debian package faketime); tests/run installs it"
    return found


@functools.lru_cache(maxsize=None)
def libfaketime() -> str:
    """The LD_PRELOAD with which the faketime program loads libfaketime, asked of it once.

    Runs load libfaketime this way rather than through the faketime program: the program
    makes a POSIX semaphore and shared memory named after its pid, which a run killed with
    SIGKILL leaves in /dev/shm, and a later faketime that gets that pid again fails with
    "sem_open: File exists" (tests flaked so). (The library makes them too, in the first
    process that loads it without FAKETIME_SHARED, and removes them when that process exits;
    the processes it starts share them. A test that kills a run removes its leftovers.)
    This one question can meet such a leftover too (of other tests' faketime): asked again,
    a new pid."""
    for _ in range(5):
        done = subprocess.run([faketime(), "-f", "2000-01-01 00:00:00", "/usr/bin/printenv", "LD_PRELOAD"],
                              capture_output=True, text=True, timeout=30, check=False)
        if "sem_open" not in done.stderr:
            break
    assert done.returncode == 0 and "libfaketime" in done.stdout, done.stdout + done.stderr
    return done.stdout.strip()


# The zygote, run as `PYTHON -IS -c`: one JSON request a line on stdin (argv, env, where
# stdout and stderr go), answered on stdout with the child's pid, then its exit status.
# Python 3.8 too (IDLE_AGENT_PYTHON).
_ZYGOTE = r"""
import builtins, json, os, sys, time, traceback
# What the agent imports (and json's re), imported once here, not by every run.
import re, socket, stat, subprocess
import gc
replies = os.dup(1)
# The collector leaves what is here alone: a child's collection would touch (and so copy)
# every page of it.
gc.freeze()
compiled = {}
for line in sys.stdin.buffer:
    request = json.loads(line)
    program = request["argv"][0]
    with open(program, "rb") as f:
        source = f.read()
    code = compiled.get((program, source))
    if code is None:
        try:
            code = compiled[(program, source)] = compile(source, program, "exec")
        except SyntaxError:
            pass
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(replies)
            # Its own process group: a timeout kills the stubs it started too.
            os.setpgid(0, 0)
            for fd, path, flags in ((0, os.devnull, os.O_RDONLY), (1, request["stdout"], os.O_WRONLY | os.O_CREAT),
                                    (2, request["stderr"], os.O_WRONLY | os.O_CREAT)):
                opened = os.open(path, flags, 0o600)
                os.dup2(opened, fd)
                os.close(opened)
            # libfaketime reads FAKETIME at every reading (FAKETIME_NO_CACHE, set when this
            # process started): the run's own environment sets its clock. FAKETIME_SHARED
            # (which libfaketime set here) names the shared memory the zygote made: without it
            # every process the run starts would make its own and leave it in /dev/shm.
            shared = os.environ.get("FAKETIME_SHARED")
            os.environ.clear()
            os.environ.update(request["env"])
            if shared:
                os.environ["FAKETIME_SHARED"] = shared
            time.tzset()
            sys.argv = request["argv"]
            try:
                exec(code or compile(source, program, "exec"),
                     {"__name__": "__main__", "__file__": program, "__builtins__": builtins, "__doc__": None,
                      "__package__": None, "__spec__": None, "__loader__": None, "__cached__": None})
                status = 0
            except SystemExit as end:
                if end.code is None or isinstance(end.code, int):
                    status = end.code or 0
                else:
                    print(end.code, file=sys.stderr)
            except BaseException:
                traceback.print_exc()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(status & 255)
    os.write(replies, b"%d\n" % pid)
    _, waited = os.waitpid(pid, 0)
    code_ = os.WEXITSTATUS(waited) if os.WIFEXITED(waited) else -os.WTERMSIG(waited)
    os.write(replies, b"%d\n" % code_)
"""


class Zygote:
    """A warm `PYTHON -IS` under libfaketime that forks one child per agent run."""

    def __init__(self) -> None:
        env = {"PATH": "/usr/bin:/bin", "TZ": "UTC", "LANG": "C.UTF-8", "LD_PRELOAD": libfaketime(),
               "FAKETIME": "2000-01-01 00:00:00", "FAKETIME_NO_CACHE": "1"}
        # Unbuffered replies: select() must see every line not yet read.
        self.process = subprocess.Popen([PYTHON, "-IS", "-c", _ZYGOTE], env=env, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, bufsize=0)

    def run(self, argv: list[str], env: dict[str, str], scratch: Path, timeout: float) -> subprocess.CompletedProcess:
        out, err = scratch / "run.stdout", scratch / "run.stderr"
        for path in (out, err):
            path.unlink(missing_ok=True)
        request = {"argv": argv, "env": env, "stdout": str(out), "stderr": str(err)}
        pid = None
        try:
            self.process.stdin.write(json.dumps(request).encode() + b"\n")
            self.process.stdin.flush()
            pid = int(self.process.stdout.readline())
            if not select.select([self.process.stdout], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(argv, timeout)
            code = int(self.process.stdout.readline())
        except BaseException:
            # A run that timed out, or was cut short (pytest-timeout's signal), leaves an
            # answer unread: this zygote is done, the next run starts another.
            if pid:
                os.killpg(pid, signal.SIGKILL)
            self.close()
            raise
        return subprocess.CompletedProcess(argv, code, out.read_text(), err.read_text())

    def close(self) -> None:
        """The zygote ends at the end of its input (a normal exit, so libfaketime removes what it made)."""
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


_zygote: Zygote | None = None


def zygote() -> Zygote:
    """This test process's zygote, started at its first use (again after one was closed)."""
    global _zygote
    if _zygote is None or _zygote.process.poll() is not None or _zygote.process.stdin.closed:
        _zygote = Zygote()
        atexit.register(_zygote.close)
    return _zygote


class Imds:
    """A local IMDSv2: PUT /latest/api/token, then GET tags with that token (401 without).

    HTTP/1.0 as the agent speaks it (one request a connection, answered, closed), read by
    hand in one thread: http.server's request parsing and a thread per request cost more
    than the agent's own work (6 requests a run)."""

    def __init__(self) -> None:
        self.tags: dict[str, str] = {}
        #: The body of spot/instance-action (None: 404, no notice).
        self.spot: str | None = None
        self.requests: list[tuple[str, str, str | None]] = []
        self.hosts: list[str | None] = []
        #: Tag keys answered with this HTTP status instead (an IMDS error).
        self.errors: dict[str, int] = {}
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.server.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:  # closed
                return
            with connection:
                # A client that never finishes its request cannot hold up the next run for long.
                connection.settimeout(5)
                try:
                    self._answer(connection)
                except OSError:
                    pass

    def _answer(self, connection: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return
            data += chunk
        request_line, *lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                return self._send(connection, 400, "")
            headers[name.strip().lower()] = value.strip()
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return self._send(connection, 400, "")
        method, path, _ = parts
        if method == "PUT":
            self.requests.append(("PUT", path, headers.get("x-aws-ec2-metadata-token-ttl-seconds")))
            self.hosts.append(headers.get("host"))
            if path == "/latest/api/token" and headers.get("x-aws-ec2-metadata-token-ttl-seconds"):
                return self._send(connection, 200, TOKEN)
            return self._send(connection, 400, "")
        if method != "GET":
            return self._send(connection, 501, "")
        token = headers.get("x-aws-ec2-metadata-token")
        self.requests.append(("GET", path, token))
        self.hosts.append(headers.get("host"))
        prefix = "/latest/meta-data/tags/instance/"
        if token != TOKEN:
            self._send(connection, 401, "")
        elif path[len(prefix):] in self.errors:
            self._send(connection, self.errors[path[len(prefix):]], "error")
        elif path == "/latest/meta-data/spot/instance-action" and self.spot is not None:
            self._send(connection, 200, self.spot)
        elif path.startswith(prefix) and path[len(prefix):] in self.tags:
            self._send(connection, 200, self.tags[path[len(prefix):]])
        else:
            self._send(connection, 404, "<html>Not Found</html>")

    @staticmethod
    def _send(connection: socket.socket, status: int, body: str) -> None:
        data = body.encode()
        connection.sendall(b"HTTP/1.0 %d %s\r\nContent-Length: %d\r\n\r\n"
                           % (status, HTTPStatus(status).phrase.encode(), len(data)) + data)

    def close(self) -> None:
        # shutdown() wakes the accept() waiting in the thread; close() alone would not.
        self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        self.thread.join(timeout=5)


def closed_port() -> str:
    """host:port where nothing listens: an unreachable IMDS."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


class Desktop:
    """A desktop as the agent sees it, at simulated time ``t`` (epoch seconds) and uptime ``up``.

    Each :meth:`minute` advances the clock and the counters by what a minute of the given
    activity produces, then runs the agent once, as the timer would.
    """

    def __init__(self, base: Path, *, imds: Imds, gpu: bool = True, cpus: int = 4,
                 start: int = MIDNIGHT + 8 * 3600, uptime: float = 3600.0, policy: str | None = "30",
                 dcv_server: bool = True, fork: bool = True) -> None:
        self.base, self.imds, self.cpus, self.fork = base, imds, cpus, fork
        # Files under root the desktop no longer serves (see :meth:`unserve`).
        self.unserved: set[str] = set()
        self.root, self.bin, self.stubs = base / "root", base / "bin", base / "stubs"
        for d in (self.bin, self.stubs, self.root / "proc/net", self.root / "proc/sys/kernel/random",
                  self.root / "proc/1", self.root / "sys/bus/pci/devices/0000:00:05.0", self.root / "dev",
                  self.root / "var/lib/deep-learning-desktop/keep-awake", self.root / "var/log"):
            d.mkdir(parents=True, exist_ok=True)
        self.agent = base / "idle-agent"
        self.agent.write_text(shipped("idle_agent.py"))
        self.agent.chmod(0o755)
        (self.bin / "keep-awake").symlink_to(self.agent)
        stub = self.bin / "stub"
        stub.write_text(_STUB)
        stub.chmod(0o755)
        for name in ("dcv", "nvidia-smi", "systemctl"):
            (self.bin / name).symlink_to(stub)
        # An Amazon ENA network card, and (on a GPU instance) an NVIDIA 3D controller.
        self._write("sys/bus/pci/devices/0000:00:05.0/vendor", "0x1d0f\n")
        self._write("sys/bus/pci/devices/0000:00:05.0/class", "0x020000\n")
        if gpu:
            self._write("sys/bus/pci/devices/0000:00:1e.0/vendor", "0x10de\n")
            self._write("sys/bus/pci/devices/0000:00:1e.0/class", "0x030200\n")
            # The NVIDIA kernel module is loaded.
            self._write("proc/driver/nvidia/version", "NVRM version: NVIDIA UNIX x86_64 Kernel Module 550.127.05\n")
        self._write("proc/1/comm", "systemd\n")
        if dcv_server:
            self._write("proc/900/comm", "dcvserver\n")
        # An NVMe root disk (a device behind it) and a snap's loop device (none).
        (self.root / "sys/block/nvme0n1/device").mkdir(parents=True, exist_ok=True)
        (self.root / "sys/block/loop0").mkdir(parents=True, exist_ok=True)
        self.console = self.root / "dev/console"
        self.console.write_text("")
        self.t, self.up = int(start), float(uptime)
        # Since boot: 2 cores busy on average and 5 GB received: only differences tell a quiet minute.
        self.busy_ticks, self.all_ticks, self.rx = 4_000_000, 8_000_000, 5_000_000_000
        self.iowait_ticks, self.tx, self.sectors = 300_000, 2_000_000_000, 90_000_000
        self.steal_ticks = 0  # time the hypervisor gave another machine (a noisy neighbour)
        self.boot_id = "6c2f1a8e-0000-4000-8000-000000000001"
        if policy is not None:
            self.imds.tags["IdleStopMinutes"] = policy
        self.set(dcv=0, gpu=0, ssh=0, ssm=0)
        self._write_counters()

    # --- the desktop's state -------------------------------------------------------
    def _write(self, relative: str, text: str) -> None:
        # Plain strings and no mkdir when the directory is there: the counters are written
        # before every run.
        if relative in self.unserved:
            return
        path = f"{self.root}/{relative}"
        try:
            f = open(path, "w")
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            f = open(path, "w")
        with f:
            f.write(text)

    def set(self, *, dcv: int | None = None, gpu: int | list[int] | None = None, ssh: int | None = None,
            ssm: int | None = None) -> None:
        """Connections, GPU utilization (one value per GPU), SSH connections and Session Manager
        workers from now on."""
        if dcv is not None:
            (self.stubs / "dcv.out").write_text(json.dumps({"id": "console", "owner": "ubuntu",
                                                            "num-of-connections": dcv}))
        if gpu is not None:
            (self.stubs / "nvidia-smi.out").write_text("".join(f"{g}\n" for g in (gpu if isinstance(gpu, list) else [gpu])))
        if ssh is not None:
            lines = ["  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid",
                     # sshd listening, and this desktop's own SSH to a remote port 22: neither is a session.
                     "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0",
                     "   1: 0A00000A:D431 0A000063:0016 01 00000000:00000000 00:00000000 00000000  1000"]
            lines += [f"   {i + 2}: 0A00000A:0016 0A000001:{0xC000 + i:04X} 01 00000000:00000000 00:00000000 "
                      "00000000     0" for i in range(ssh)]
            self._write("proc/net/tcp", "\n".join(lines) + "\n")
            self._write("proc/net/tcp6", lines[0] + "\n")
        if ssm is not None:
            for pid in range(4000, 4010):
                shutil.rmtree(self.root / f"proc/{pid}", ignore_errors=True)
            for i in range(ssm):
                self._write(f"proc/{4000 + i}/comm", "ssm-session-wor\n")

    def unserve(self, relative: str) -> None:
        """From now on the kernel file ``relative`` (under root, e.g. "proc/stat") is not there."""
        self.unserved.add(relative)
        (self.root / relative).unlink(missing_ok=True)

    def fail(self, command: str, code: int | None = 1) -> None:
        """Make a stub command exit with this code (None: work again)."""
        rc = self.stubs / f"{command}.rc"
        if code is None:
            rc.unlink(missing_ok=True)
        else:
            rc.write_text(str(code))

    def _write_counters(self) -> None:
        idle = self.all_ticks - self.busy_ticks - self.iowait_ticks - self.steal_ticks
        lines = [f"cpu  {self.busy_ticks} 0 0 {idle} {self.iowait_ticks} 0 0 {self.steal_ticks} 0 0"]
        if self.cpus == 1:
            lines.append(lines[0].replace("cpu ", "cpu0", 1))
        else:
            # As the scheduler may place it: the work runs on the other CPUs while cpu0 idles (as
            # long as they can hold it); only the first line tells the machine's whole.
            share = self.all_ticks // self.cpus
            idle0 = min(idle, share)
            busy0 = share - idle0
            per = [max(v, 0) // (self.cpus - 1)
                   for v in (self.busy_ticks - busy0, idle - idle0, self.iowait_ticks, self.steal_ticks)]
            lines.append(f"cpu0 {busy0} 0 0 {idle0} 0 0 0 0 0 0")
            lines += [f"cpu{i} {per[0]} 0 0 {per[1]} {per[2]} 0 0 {per[3]} 0 0" for i in range(1, self.cpus)]
        lines += ["intr 123456 0 0", "ctxt 987654", "btime 1796000000", "processes 4242"]
        self._write("proc/stat", "\n".join(lines) + "\n")
        self._write("proc/net/dev",
                    "Inter-|   Receive                            |  Transmit\n"
                    " face |bytes    packets errs drop fifo frame compressed multicast|bytes\n"
                    f"    lo: {7 * self.rx} 100 0 0 0 0 0 0 {7 * self.rx} 0 0 0 0 0 0 0\n"
                    f"  ens5: {self.rx} 200 0 0 0 0 0 0 {self.tx} 300 0 0 0 0 0 0\n")
        # Reads and writes share the sectors; the partition and the loop device move 9 times
        # as much: only the whole disk may count.
        # Reads and writes completed grow with the sectors, as the kernel's do (8 a request).
        half = self.sectors // 2
        reads, writes = 100 + half // 8, 200 + (self.sectors - half) // 8
        self._write("proc/diskstats",
                    f"   7       0 loop0 5 0 {9 * half} 1 0 0 {9 * half} 0 0 0 0 0 0 0 0 0 0\n"
                    f" 259       0 nvme0n1 {reads} 0 {half} 50 {writes} 0 {self.sectors - half} 80 0 90 130 0 0 0 0 0 0\n"
                    f" 259       1 nvme0n1p1 90 0 {9 * half} 40 190 0 {9 * half} 70 0 80 110 0 0 0 0 0 0\n")
        self._write("proc/uptime", f"{self.up:.2f} {self.up * 3:.2f}\n")
        self._write("proc/sys/kernel/random/boot_id", self.boot_id + "\n")

    def reboot(self, after_seconds: int = 600) -> None:
        """A stop and start: a new boot id, uptime and counters from zero; files under /var kept."""
        self.t += after_seconds
        self.up = 0.0
        self.busy_ticks, self.all_ticks, self.rx = 0, 0, 0
        self.iowait_ticks, self.tx, self.sectors, self.steal_ticks = 0, 0, 0, 0
        self.boot_id = self.boot_id[:-4] + f"{int(self.boot_id[-4:]) + 1:04d}"
        self._write_counters()

    # --- running the agent -----------------------------------------------------------
    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "TZ": "UTC",
            "LANG": "C.UTF-8",
            "DLD_ROOT": str(self.root),
            "DLD_CONSOLE": str(self.console),
            "DLD_IMDS": self.imds.address,
            "DLD_IDLE_RECHECK_SECONDS": "0",
            "STUB_DIR": str(self.stubs),
        }

    def clock(self) -> dict[str, str]:
        """The environment of libfaketime with the clock stopped at the simulated time (an
        absolute FAKETIME stops it): every reading of a run, its children's too, sees it."""
        return {"LD_PRELOAD": libfaketime(), "FAKETIME": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.t))}

    def run(self, *args: str, program: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 30, fork: bool | None = None) -> subprocess.CompletedProcess:
        """Run the agent (or keep-awake) once at the simulated time: forked from the zygote, or
        as a fresh `python3 -IS` (`fork`, by default the desktop's)."""
        environment = {**self.env(), **self.clock(), **(env or {})}
        if self.fork if fork is None else fork:
            return zygote().run([str(program or self.agent), *args], environment, self.base, timeout)
        command = [PYTHON, "-IS", str(program or self.agent), *args]
        return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=timeout, check=False)

    def minute(self, *, seconds: float = 60, **activity: float) -> subprocess.CompletedProcess:
        """Let `seconds` of this activity pass (see :meth:`advance`), then run the agent."""
        self.advance(seconds, **activity)
        done = self.run()
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    def advance(self, seconds: float = 60, *, cores: float = 0.0, mbit: float = 0.0, tx: float = 0.0,
                iowait: float = 0.0, disk_mb: float = 0.0, steal: float = 0.0) -> None:
        """Let time pass with this activity, without running the agent: CPU cores busy, Mbit/s
        received (`mbit`) and sent (`tx`), cores waiting for I/O, MB/s read and written, cores
        the hypervisor gave to another machine (`steal`). The clock shows whole seconds: half
        a second passes in the uptime and the counters, not on the clock."""
        self.t += seconds
        self.up += seconds
        ticks = int(self.cpus * HZ * seconds)
        self.all_ticks += ticks
        self.busy_ticks += int(cores * HZ * seconds)
        self.iowait_ticks += int(iowait * HZ * seconds)
        self.steal_ticks += int(steal * HZ * seconds)
        self.rx += int(mbit * 1e6 / 8 * seconds)
        self.tx += int(tx * 1e6 / 8 * seconds)
        self.sectors += int(disk_mb * 1e6 / 512 * seconds)
        self._write_counters()

    def keep_awake(self, *args: str, fork: bool | None = None) -> subprocess.CompletedProcess:
        return self.run(*args, program=self.bin / "keep-awake", fork=fork)

    # --- what happened -------------------------------------------------------------------
    def calls(self, command: str) -> list[str]:
        log = self.stubs / "calls"
        return [line for line in log.read_text().splitlines() if line.split()[0] == command] if log.exists() else []

    @property
    def poweroffs(self) -> int:
        return self.calls("systemctl").count("systemctl poweroff")

    def console_lines(self) -> list[str]:
        return self.console.read_text().splitlines()

    def log_lines(self) -> list[str]:
        log = self.root / "var/log/deep-learning-desktop-idle.log"
        return log.read_text().splitlines() if log.exists() else []

    @property
    def state_file(self) -> Path:
        return self.root / "var/lib/deep-learning-desktop/idle/state.json"
