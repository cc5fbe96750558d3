#!/usr/bin/python3 -IS
# The idle agent of the deep learning desktop. systemd runs it once a minute
# (deep-learning-desktop-idle.timer starts the oneshot deep-learning-desktop-idle.service).
# Each run takes one reading and keeps what the next run needs in a state file, so a
# crash or restart of the agent loses nothing. After IdleStopMinutes idle minutes (the
# instance tag, read through IMDSv2 at every run: `pulumi up` changes it in place), and
# never in the first 15 minutes after a boot, it re-checks everything once more, says so
# on the console and powers off; the instance stops (shutdown behaviour "stop").
# Uncertain means busy: a probe that fails, or a policy it cannot read, never stops it.
# Run as `keep-awake` (a symlink), it is the desktop's keep-awake command instead.
#
# The boot installs this file without its comments (cloud_init.render.shipped), from a
# Parameter Store parameter of at most 8 KB (cloud_init/boot_files.py), hence the terse
# code and the long comments. Python 3.8 (Ubuntu 20.04)
# runs it, standard library only, with -IS: interpreter startup is most of its CPU.
# Every path is under DLD_ROOT and IMDS is DLD_IMDS (host:port), so tests run this very
# file in a scratch root; the time comes from Python's clock (libfaketime fakes it), the
# time since boot from /proc/uptime.
import json
import os
import socket
import subprocess
import sys
import time

E = os.environ.get
ROOT = E("DLD_ROOT", "")
CONSOLE = E("DLD_CONSOLE", ROOT + "/dev/console")
IMDS = E("DLD_IMDS", "169.254.169.254:80")
# Between the reading that says "stop" and the re-check: a person connecting right now
# gets these seconds to show up.
RECHECK = float(E("DLD_IDLE_RECHECK_SECONDS", "5"))
STATE = "/var/lib/deep-learning-desktop/idle/state.json"
AWAKE = "/var/lib/deep-learning-desktop/keep-awake/until"
LOG = ROOT + "/var/log/deep-learning-desktop-idle.log"
GRACE = 900
# A run that finds the previous one older than this did not watch the minutes between
# (the timer did not run): the idle count starts over.
GAP = 300


class Unknown(Exception):
    pass


# O_NOFOLLOW: ubuntu owns the keep-awake directory; a symlink there must not make root
# read another file. Errors never quote what was read, for the same reason.
def read(path, size=-1):
    with os.fdopen(os.open(ROOT + path, os.O_RDONLY | os.O_NOFOLLOW)) as f:
        return f.read(size)


def whole(text, what):
    try:
        return int(text or 0)
    except ValueError:
        raise Unknown(what + " is not a number")


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def run(*command):
    done = subprocess.run(command, capture_output=True, text=True, timeout=20)
    if done.returncode:
        raise Unknown(f"{command[0]} exit {done.returncode}")
    return done.stdout


# A bare socket, not http.client, whose imports would double the agent's CPU time.
# HTTP/1.0: the answer ends when the connection closes, never in chunks.
def imds(method, path, header):
    host, port = IMDS.rsplit(":", 1)
    with socket.create_connection((host, int(port)), 2) as s:
        s.sendall(f"{method} {path} HTTP/1.0\r\n{header}\r\n\r\n".encode())
        data = b"".join(iter(lambda: s.recv(65536), b""))
    head, _, body = data.decode().partition("\r\n\r\n")
    return head.split()[1], body.strip()


# The two instance tags the agent reads, as numbers; None where a tag is not set (404).
# A token the service refused makes the tag requests fail with 401: Unknown.
def tags():
    token = imds("PUT", "/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds: 60")[1]
    found = []
    for key in ("IdleStopMinutes", "KeepAwakeUntil"):
        status, value = imds("GET", "/latest/meta-data/tags/instance/" + key, "X-aws-ec2-metadata-token: " + token)
        if status not in ("200", "404"):
            raise Unknown(f"IMDS {key}: HTTP {status}")
        found.append(whole(value, key) if status == "200" else None)
    return found


def awake_file():
    try:
        return whole(read(AWAKE, 32).strip(), "keep-awake file")
    except FileNotFoundError:
        return 0


# Jiffies in /proc/stat's first line: busy is all but idle, iowait and steal. Also the
# number of CPUs, to turn the share of all jiffies into cores.
def cpu():
    lines = read("/proc/stat").splitlines()
    v = [int(x) for x in lines[0].split()[1:9]]
    return sum(x[:3] == "cpu" and x[3:4].isdigit() for x in lines), sum(v) - v[3] - v[4] - v[7], sum(v)


# Bytes received by every interface but loopback.
def received():
    rx = {}
    for line in read("/proc/net/dev").splitlines()[2:]:
        name, _, data = line.partition(":")
        if name.strip() != "lo":
            rx[name.strip()] = int(data.split()[0])
    return rx


# Established (state 01) TCP connections to local port 22 (hex 0016), IPv4 and IPv6.
def ssh():
    n = 0
    for table in ("tcp", "tcp6"):
        try:
            n += sum(x.split()[1].endswith(":0016") and x.split()[3] == "01"
                     for x in read("/proc/net/" + table).splitlines()[1:])
        except FileNotFoundError:
            pass
    return n


# Session Manager sessions: ssm-session-worker processes (comm keeps 15 characters).
def ssm():
    n = 0
    for pid in os.listdir(ROOT + "/proc"):
        try:
            n += pid.isdigit() and read(f"/proc/{pid}/comm").startswith("ssm-session-wor")
        except OSError:
            pass
    return n


# The highest utilization of any GPU; None when the PCI bus has no NVIDIA display
# controller (vendor 10de, class 03). On a GPU instance a failing nvidia-smi is Unknown.
def gpu():
    bus = "/sys/bus/pci/devices/"
    for device in os.listdir(ROOT + bus):
        if read(bus + device + "/vendor").strip() == "0x10de" and read(bus + device + "/class").startswith("0x03"):
            out = run("nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits")
            try:
                return max(int(x) for x in out.split())
            except ValueError:
                raise Unknown("nvidia-smi gave no utilization")
    return None


# Clients connected to DCV's console session (root may describe every session).
def dcv():
    return int(json.loads(run("dcv", "describe-session", "console", "--json"))["num-of-connections"])


# One reading of every signal: r has the readings, the busy reasons and the policy.
# prev: the state the previous run saved; the CPU and download rates are averages since.
def reading(prev):
    r = {"t": time.time(), "up": float(read("/proc/uptime").split()[0]),
         "boot": read("/proc/sys/kernel/random/boot_id").strip(), "cores": None, "mbit": None}
    busy = r["busy"] = []
    for name, probe in (("cpu", cpu), ("rx", received), ("dcv", dcv), ("ssh", ssh), ("ssm", ssm),
                        ("gpu", gpu), ("tags", tags), ("awake", awake_file)):
        try:
            r[name] = probe()
        except Exception as error:
            r[name] = None
            busy.append(f"{name} unknown: {error or type(error).__name__}")
    found = r.pop("tags")
    policy, until = found or (None, 0)
    r["policy"] = None if policy is None or policy < 0 else policy
    if found and r["policy"] is None:
        busy.append("no idle policy: IdleStopMinutes tag missing or negative")
    if r["cpu"] and r["rx"] is not None and prev.get("boot") == r["boot"] and prev.get("cpu"):
        (ncpu, b, t), (_, pb, pt), elapsed = r["cpu"], prev["cpu"], r["up"] - prev["up"]
        if t > pt and elapsed > 0:
            r["cores"] = round(ncpu * (b - pb) / (t - pt), 2)
            r["mbit"] = round(sum(max(0, n - prev["rx"].get(i, 0)) for i, n in r["rx"].items()) / elapsed / 125000, 2)
    if r["cores"] is None:
        busy.append("no cpu and download rates yet")
    until = max(r["awake"] or 0, until or 0)
    for name, value, unit, limit in (("dcv", r["dcv"], " connected", 1), ("ssh", r["ssh"], " connected", 1),
                                     ("session manager", r["ssm"], " open", 1), ("gpu", r["gpu"], "%", 10),
                                     ("cpu", r["cores"], " cores", 0.5), ("download", r["mbit"], " Mbit/s", 10)):
        if value is not None and value >= limit:
            busy.append(f"{name} {value}{unit}")
    if until > r["t"]:
        busy.append("keep-awake until " + iso(until))
    return r


# The state after reading r: the idle streak, and whether to stop now.
def decide(prev, r):
    same = prev.get("boot") == r["boot"]
    since = prev.get("since") if same and 0 <= r["t"] - prev.get("t", 0) <= GAP else None
    if r["busy"]:
        since = None
    elif since is None:
        since = r["t"]
    # A run a few seconds early (timer accuracy) still completes its minute.
    minutes = int(r["t"] - since + 10) // 60 if since else 0
    s = {k: r[k] for k in ("t", "up", "boot", "cpu", "rx", "policy")}
    s.update(since=since, minutes=minutes, status="busy" if r["busy"] else "idle", was=same and prev.get("status"))
    s["stop"] = bool(since and r["policy"] and minutes >= r["policy"] and r["up"] >= GRACE)
    return s


def say(line):
    print(line)
    try:
        with open(CONSOLE, "a") as f:
            f.write(f"deep-learning-desktop: {line}\n")
    except OSError:
        pass


# One line per run with the readings, so thresholds can be tuned from real logs. Bounded:
# one old file beside the current one, 2 MB in all (more than a week). A log that cannot
# be written never stops the agent.
def log(s, r, decision):
    line = (f"{iso(r['t'])} {decision} idle={s['minutes']}/{r['policy']}min up={int(r['up'])}s cores={r['cores']} "
            f"gpu={r['gpu']} mbit={r['mbit']} dcv={r['dcv']} ssh={r['ssh']} ssm={r['ssm']} {'; '.join(r['busy'])}")
    try:
        if os.path.getsize(LOG) > 1000000:
            os.replace(LOG, LOG + ".1")
    except OSError:
        pass
    try:
        with open(LOG, "a") as f:
            f.write(line + "\n")
    except OSError:
        pass


# A new file renamed over the old: a run killed midway leaves the previous state.
def save(s):
    path = ROOT + STATE
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(s, f)
    os.replace(path + ".tmp", path)


def agent():
    try:
        prev = dict(json.loads(read(STATE)))
    except (OSError, ValueError, TypeError):
        prev = {}
    r = reading(prev)
    s = decide(prev, r)
    if s["stop"]:
        time.sleep(RECHECK)
        r = reading(prev)
        s = decide(prev, r)
    if s["stop"]:
        say(f"stopping after {s['minutes']} idle minutes")
        # The count starts over: should the machine still run later, it stops again only
        # after another full idle period, never twice at once.
        s["since"] = r["t"]
        save(s)
        log(s, r, "stopping")
        code = subprocess.run(["systemctl", "poweroff"]).returncode
        if code:
            log(s, r, f"poweroff-failed-{code}")
        return
    save(s)
    grace = r["up"] < GRACE and s["minutes"] >= (r["policy"] or 1e9)
    log(s, r, "grace" if grace else s["status"])
    if s["status"] == "idle" and s["was"] != "idle":
        say("idle since " + iso(s["since"]))
    elif s["status"] == "busy" and s["was"] == "idle":
        say(f"busy again ({'; '.join(r['busy'])})")


# keep-awake [4h | 90m | 1h30m | off]: keep the desktop up for that long (at most 72
# hours, from now), or end that; then show until when it holds.
def keep_awake(args):
    t, seconds, digits = time.time(), 0, ""
    if args and args != ["off"]:
        for ch in args[0] + ("" if len(args) == 1 else "?"):
            if ch.isdigit():
                digits += ch
            elif ch in "dhm" and digits:
                seconds += int(digits) * {"d": 86400, "h": 3600, "m": 60}[ch]
                digits = ""
            else:
                digits = "bad"
                break
        if digits or not 0 < seconds <= 72 * 3600:
            print("usage: keep-awake [4h | 90m | 1h30m | off], at most 72h", file=sys.stderr)
            return 2
    try:
        if args == ["off"] and os.path.exists(ROOT + AWAKE):
            os.remove(ROOT + AWAKE)
        elif args and args != ["off"]:
            # Not through a link someone put there, should root run this.
            with os.fdopen(os.open(ROOT + AWAKE + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                                   0o644), "w") as f:
                f.write(f"{int(t + seconds)}\n")
            os.replace(ROOT + AWAKE + ".tmp", ROOT + AWAKE)
        until = awake_file()
    except (OSError, Unknown) as error:
        print(f"keep-awake: {error}", file=sys.stderr)
        return 1
    print("keep-awake: " + ("until " + iso(until) if until > t else "off"))
    return 0


if __name__ == "__main__":
    if os.path.basename(sys.argv[0]) == "keep-awake":
        sys.exit(keep_awake(sys.argv[1:]))
    agent()
