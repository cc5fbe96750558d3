#!/usr/bin/python3 -IS
# The idle agent of the deep learning desktop. systemd runs it once a minute
# (deep-learning-desktop-idle.timer starts the oneshot deep-learning-desktop-idle.service).
# Each run takes one reading and keeps what the next run needs in a state file, so a
# crash or restart of the agent loses nothing. After IdleStopMinutes idle minutes (the
# instance tag, read through IMDSv2 at every run: `pulumi up` changes it in place), and
# never in the first 15 minutes after a boot, it re-checks everything once more, says so
# on the console and powers off; the instance stops (shutdown behaviour "stop").
# Uncertain means busy: a probe that fails, or a policy it cannot read, does not stop it,
# but not forever: after IdleBlockedHours (tag, default 12, 0 = never) in which only
# unreadable probes kept it up and every readable signal was idle, it stops, saying why.
# A probe whose subject is plainly absent is no doubt: no dcvserver process = no DCV
# client, no NVIDIA kernel module (/proc/driver/nvidia) = no GPU work. Inside a Capacity
# Block (tag CapacityBlockEnd, epoch seconds) it does not stop, except when idle in the
# 10 minutes before EC2 begins to terminate the block's instances, 30 minutes before its
# end (EC2's "Monitor Capacity Blocks using EventBridge"): a clean stop, not a kill. A Spot
# interruption notice is said on the console and in every DCV session, never acted on.
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
import stat
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
# Where the state goes when /var cannot take it (a full disk): tmpfs, kept for the boot.
SPARE = "/run/deep-learning-desktop-idle.json"
AWAKE = "/var/lib/deep-learning-desktop/keep-awake/until"
LOG = ROOT + "/var/log/deep-learning-desktop-idle.log"
GRACE = 900
# A run that finds the previous one older than this did not watch the minutes between
# (the timer did not run): the idle count starts over.
GAP = 300
# A keep-awake deadline further ahead than this (plus a minute of clock skew) is nonsense,
# ignored: the laptop and the desktop command never set more.
MAX_AWAKE = 72 * 3600
# Before a Capacity Block's end, when EC2 begins terminating its instances; and the
# minutes before that in which an idle desktop stops cleanly instead.
BLOCK_END = 1800 + 600
TAGS = ("IdleStopMinutes", "KeepAwakeUntil", "IdleBlockedHours", "CapacityBlockEnd")
SPOT = "stopping in 2 minutes: save your work"


class Unknown(Exception):
    pass


# A value that is not used, with a log line (the keep-awake file of the wrong kind).
class Ignored(Exception):
    pass


# O_NOFOLLOW: ubuntu owns the keep-awake directory; a symlink there must not make root
# read another file. Errors never quote what was read, for the same reason. Any bytes
# decode (errors="replace"): /proc holds what processes put there.
def read(path, size=-1):
    with os.fdopen(os.open(ROOT + path, os.O_RDONLY | os.O_NOFOLLOW), errors="replace") as f:
        return f.read(size)


def whole(text, what):
    try:
        return int(text or 0)
    except ValueError:
        raise Unknown(what + " is not a number")


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


# The one duration grammar of the desktop and the laptop (desktop/commands import it):
# whole days, hours and minutes, in this order, each at most once: 30m, 4h, 1h30m, 1d.
# No seconds, fractions, signs or bare numbers: "90" could mean anything.
def duration_seconds(text):
    import re
    m = re.fullmatch(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text.strip(), re.ASCII)
    if not text.strip() or not m:
        raise ValueError(f"{text!r} is not a duration: expected whole days, hours, minutes and seconds in "
                         "that order, e.g. 30m, 4h, 1h30m, 1d or 30s (no fractions, signs or bare numbers)")
    d, h, n, sec = (int(x or 0) for x in m.groups())
    return d * 86400 + h * 3600 + n * 60 + sec


def run(*command):
    done = subprocess.run(command, capture_output=True, timeout=20)
    if done.returncode:
        raise Unknown(f"{command[0]} exit {done.returncode}")
    return done.stdout.decode(errors="replace")


# A bare socket, not http.client, whose imports would double the agent's CPU time.
# HTTP/1.0: the answer ends when the connection closes, never in chunks. Host: what
# HTTP/1.1 servers and proxies expect; IMDS answers without, but need not forever.
def imds(method, path, header):
    host, port = IMDS.rsplit(":", 1)
    with socket.create_connection((host, int(port)), 2) as s:
        s.sendall(f"{method} {path} HTTP/1.0\r\nHost: 169.254.169.254\r\n{header}\r\n\r\n".encode())
        data = b"".join(iter(lambda: s.recv(65536), b""))
    head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
    return head.split()[1], body.strip()


# The instance tags the agent reads, as numbers; None where a tag is not set (404). Any
# other answer (401 for a refused token, 5xx) is Unknown: a keep-awake from the laptop
# must never read as "no tag". Also the Spot interruption notice (404: none).
def tags():
    token = imds("PUT", "/latest/api/token", "X-aws-ec2-metadata-token-ttl-seconds: 60")[1]
    header = "X-aws-ec2-metadata-token: " + token
    found = {}
    for key in TAGS:
        status, value = imds("GET", "/latest/meta-data/tags/instance/" + key, header)
        if status not in ("200", "404"):
            raise Unknown(f"IMDS {key}: HTTP {status}")
        found[key] = whole(value, key) if status == "200" else None
    status, notice = imds("GET", "/latest/meta-data/spot/instance-action", header)
    found["spot"] = notice if status == "200" else None
    return found


# Honoured only as a regular file of at most 64 bytes: opened non-blocking (a FIFO there
# would hang the run) and without following links.
def awake_file():
    try:
        fd = os.open(ROOT + AWAKE, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except FileNotFoundError:
        return 0
    except OSError as error:
        raise Ignored(f"keep-awake file ignored: {error.strerror}")
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_size > 64:
        os.close(fd)
        raise Ignored("keep-awake file ignored: not a regular file of at most 64 bytes")
    with os.fdopen(fd, "rb") as f:
        try:
            return int(f.read(64).strip() or 0)
        except ValueError:
            raise Ignored("keep-awake file ignored: not a number")


# Jiffies in /proc/stat's first line: busy is all but idle, iowait and steal; iowait
# apart. Also the number of CPUs, to turn the share of all jiffies into cores.
def cpu():
    lines = read("/proc/stat").splitlines()
    v = [int(x) for x in lines[0].split()[1:9]]
    return sum(x[:3] == "cpu" and x[3:4].isdigit() for x in lines), sum(v) - v[3] - v[4] - v[7], v[4], sum(v)


# Bytes received and sent by every interface but loopback. NFS (EFS) and Lustre (FSx)
# clients talk over the network card: their traffic is counted here.
def net():
    rx, tx = {}, {}
    for line in read("/proc/net/dev").splitlines()[2:]:
        name, _, data = line.partition(":")
        name, data = name.strip(), data.split()
        if name != "lo":
            rx[name], tx[name] = int(data[0]), int(data[8])
    return rx, tx


# Sectors (512 bytes) read and written by whole disks with a device behind them: not
# loop, ram, zram, dm or md devices (in memory, or on top of a disk counted already), and
# not partitions (their disk counts them), which have no /sys/block entry.
def disk():
    base = ROOT + "/sys/block/"
    real = {d for d in os.listdir(base) if os.path.exists(base + d + "/device")}
    out = {}
    for line in read("/proc/diskstats").splitlines():
        f = line.split()
        if len(f) > 9 and f[2] in real:
            out[f[2]] = int(f[5]) + int(f[9])
    return out


# Growth of each counter since the previous run. A counter lower than before was reset
# (an interface or device re-created): its whole new value is what it counted since, so a
# reset never cancels a real transfer elsewhere in the same minute.
def grown(now, before):
    return sum(n - before.get(k, 0) if n >= before.get(k, 0) else n for k, n in now.items())


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


# Session Manager sessions (ssm-session-worker processes) and whether the DCV server runs,
# from every process's name as bytes (the kernel cuts it at 15 bytes, maybe inside a
# character: nothing is decoded).
def procs():
    ssm = dcvserver = 0
    for pid in os.listdir(ROOT + "/proc"):
        if pid.isdigit():
            try:
                with open(f"{ROOT}/proc/{pid}/comm", "rb") as f:
                    name = f.read()
            except OSError:
                continue
            ssm += name.startswith(b"ssm-session-wor")
            dcvserver = dcvserver or name.startswith(b"dcvserver")
    return ssm, dcvserver


# The highest utilization of any GPU (one busy GPU of four is busy). Without the NVIDIA
# kernel module loaded nothing can use a GPU: None. With it, a failing nvidia-smi is Unknown.
def gpu():
    if not os.path.exists(ROOT + "/proc/driver/nvidia"):
        return None
    out = run("nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits")
    try:
        return max(int(x) for x in out.split())
    except ValueError:
        raise Unknown("nvidia-smi gave no utilization")


# Clients connected to DCV's console session (root may describe every session); none
# when no DCV server runs (a setup that failed before DCV, or DCV down).
def dcv(found):
    if found and not found[1]:
        return 0
    return int(json.loads(run("dcv", "describe-session", "console", "--json"))["num-of-connections"])


# One reading of every signal: r has the readings, the busy reasons and the policy.
# prev: the state the previous run saved; rates are averages since.
def reading(prev):
    t = time.time()
    r = {"t": t, "up": float(read("/proc/uptime").split()[0]),
         "boot": read("/proc/sys/kernel/random/boot_id").strip(), "notes": [], "unread": {}}
    for k in ("cores", "iowait", "rx", "tx", "disk_mb"):
        r[k] = None
    busy = r["busy"] = []
    for name, probe in (("cpu", cpu), ("net", net), ("disk", disk), ("procs", procs), ("dcv", lambda: dcv(r["procs"])),
                        ("ssh", ssh), ("gpu", gpu), ("tags", tags), ("awake", awake_file)):
        try:
            r[name] = probe()
        except Ignored as error:
            r[name] = None
            r["notes"].append(str(error))
        except Exception as error:
            r[name] = None
            r["unread"][name] = str(error) or type(error).__name__
            busy.append(f"{name} unknown: {r['unread'][name]}")
    found = r.pop("tags") or {}
    policy, hours = found.get("IdleStopMinutes"), found.get("IdleBlockedHours")
    r["policy"] = None if policy is None or policy < 0 else policy
    if "tags" not in r["unread"] and r["policy"] is None:
        busy.append("no idle policy: IdleStopMinutes tag missing or negative")
    r["blocked_after"] = 12 * 3600 if hours is None else max(0, hours) * 3600
    r["block"], r["spot"] = found.get("CapacityBlockEnd"), found.get("spot")
    elapsed = r["up"] - prev["up"] if prev.get("boot") == r["boot"] else 0
    if elapsed > 0:
        if r["cpu"] and prev.get("cpu"):
            (n, b, w, a), (_, pb, pw, pa) = r["cpu"], prev["cpu"]
            if a > pa:
                r["cores"], r["iowait"] = round(n * (b - pb) / (a - pa), 2), round(n * (w - pw) / (a - pa), 2)
        if r["net"] and prev.get("net"):
            r["rx"], r["tx"] = (round(grown(r["net"][i], prev["net"][i]) / elapsed / 125000, 2) for i in (0, 1))
        if r["disk"] is not None and prev.get("disk") is not None:
            r["disk_mb"] = round(grown(r["disk"], prev["disk"]) * 512 / elapsed / 1e6, 2)
    if any(r[k] is None and p not in r["unread"] for k, p in (("cores", "cpu"), ("rx", "net"), ("disk_mb", "disk"))):
        busy.append("no rates yet")
    ssm = r["procs"] and r["procs"][0]
    for name, value, unit, limit in (
            ("dcv", r["dcv"], " connected", 1), ("ssh", r["ssh"], " connected", 1), ("session manager", ssm, " open", 1),
            ("gpu", r["gpu"], "%", 10), ("cpu", r["cores"], " cores", 0.5), ("iowait", r["iowait"], " cores", 0.5),
            ("download", r["rx"], " Mbit/s", 10), ("upload", r["tx"], " Mbit/s", 10),
            ("disk", r["disk_mb"], " MB/s", 20)):
        if value is not None and value >= limit:
            busy.append(f"{name} {value}{unit}")
    until = 0
    for name, value in (("file", r["awake"]), ("tag KeepAwakeUntil", found.get("KeepAwakeUntil"))):
        if value and value > t + MAX_AWAKE + 60:
            r["notes"].append(f"keep-awake {name} ignored: more than 72 hours ahead")
        elif value:
            until = max(until, value)
    if until > t:
        busy.append("keep-awake until " + iso(until))
    return r


# The state after reading r: the idle streak, the streak in which only unreadable probes
# kept it busy, and whether to stop now (and why).
def decide(prev, r):
    same = prev.get("boot") == r["boot"]
    watched = same and 0 <= r["t"] - prev.get("t", 0) <= GAP
    since = prev.get("since") if watched else None
    blocked = prev.get("blocked") if watched else None
    if r["busy"]:
        since = None
    elif since is None:
        since = r["t"]
    if not r["unread"] or len(r["busy"]) > len(r["unread"]):
        blocked = None
    elif blocked is None:
        blocked = r["t"]
    # A run a few seconds early (timer accuracy) still completes its minute.
    minutes = int(r["t"] - since + 10) // 60 if since else 0
    s = {k: r[k] for k in ("t", "up", "boot", "cpu", "net", "disk", "policy", "spot")}
    s.update(since=since, blocked=blocked, minutes=minutes, status="busy" if r["busy"] else "idle",
             was=same and prev.get("status"), unread=r["unread"])
    policy, block, why = r["policy"], r["block"] or 0, None
    if since and policy and minutes >= policy:
        why = f"after {minutes} idle minutes"
    elif since and policy and block - BLOCK_END <= r["t"] < block:
        why = f"idle, {int(block - r['t']) // 60} minutes before its Capacity Block ends at {iso(block)}"
    elif blocked and policy and r["blocked_after"] and r["t"] - blocked + 10 >= r["blocked_after"]:
        why = (f"after {int(r['t'] - blocked + 10) // 3600}h with every readable signal idle: "
               + ", ".join(f"{k} unreadable ({v})" for k, v in r["unread"].items()))
    if r["t"] < block - BLOCK_END:
        r["notes"].append(f"in a Capacity Block until {iso(block)}: no stop before 40 minutes ahead of its end")
        why = None
    s["stop"] = bool(why and r["up"] >= GRACE)
    s["why"] = why
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
            f"iowait={r['iowait']} gpu={r['gpu']} rx={r['rx']} tx={r['tx']} disk={r['disk_mb']} dcv={r['dcv']} "
            f"ssh={r['ssh']} ssm={r['procs'] and r['procs'][0]} {'; '.join(r['busy'])}")
    if r["notes"]:
        line += " | " + "; ".join(r["notes"])
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


# A new file renamed over the old: a run killed midway leaves the previous state. When
# /var cannot take it (a full disk), under /run, said once on the console.
def save(s, prev):
    for path in (STATE, SPARE):
        try:
            os.makedirs(os.path.dirname(ROOT + path), exist_ok=True)
            with open(ROOT + path + ".tmp", "w") as f:
                json.dump(s, f)
            os.replace(ROOT + path + ".tmp", ROOT + path)
            if path == STATE:
                try:
                    os.remove(ROOT + SPARE)
                except OSError:
                    pass
            return
        except OSError as e:
            s["full"] = str(e)
            if not prev.get("full"):
                say(f"idle state not saved in {STATE} ({e}): kept in {SPARE} for now; the stop still works")


# The saved states (the newest of /var's and /run's), or none.
def load(notes):
    found = [{}]
    for path in (STATE, SPARE):
        try:
            found.append(json.loads(read(path)))
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as error:
            notes.append(f"state {path} unreadable ({error}): started afresh")
    return max(found, key=lambda x: x.get("t", 0))


def measure():
    notes = []
    try:
        prev = load(notes)
        r = reading(prev)
        return prev, r, decide(prev, r), notes
    except (TypeError, KeyError, ValueError, AttributeError, IndexError) as error:
        notes.append(f"state of the wrong shape ({type(error).__name__}): started afresh")
        r = reading({})
        return {}, r, decide({}, r), notes


# A Spot interruption notice: EC2 stops (or terminates) the instance in 2 minutes. Said on
# the console and in every DCV session, once per notice; the agent itself does nothing.
def spot(notice):
    try:
        what = json.loads(notice)
        line = f"spot interruption: EC2 will {what['action']} this desktop at {what['time']}: {SPOT}"
    except Exception:
        line = "spot interruption: " + SPOT
    say(line)
    try:
        sessions = [x["id"] for x in json.loads(run("dcv", "list-sessions", "--json"))]
    except Exception:
        sessions = ["console"]
    for session in sessions:
        try:
            subprocess.run(["dcv", "notify-user", "--duration", "120", session, line], capture_output=True, timeout=10)
        except Exception:
            pass
    return line


def agent():
    prev, r, s, notes = measure()
    r["notes"] += notes
    if s["stop"]:
        time.sleep(RECHECK)
        r = reading(prev)
        r["notes"] += notes
        s = decide(prev, r)
    if r["spot"] and r["spot"] != prev.get("spot"):
        r["notes"].append(spot(r["spot"]))
    was = prev.get("unread") if prev.get("boot") == r["boot"] and isinstance(prev.get("unread"), dict) else {}
    for name, error in r["unread"].items():
        if name not in was:
            say(f"idle stop blocked: {name} unreadable ({error}) since {iso(r['t'])}")
    for name in was:
        if name not in r["unread"]:
            say(f"idle stop unblocked: {name} readable again")
    if s["stop"]:
        say("stopping " + s["why"])
        # The count starts over: should the machine still run later, it stops again only
        # after another full idle period, never twice at once.
        s["since"], s["blocked"] = s["since"] and r["t"], s["blocked"] and r["t"]
        save(s, prev)
        log(s, r, "stopping")
        code = subprocess.run(["systemctl", "poweroff"]).returncode
        if code:
            log(s, r, f"poweroff-failed-{code}")
        return
    save(s, prev)
    grace = r["up"] < GRACE and s["minutes"] >= (r["policy"] or 1e9)
    log(s, r, "grace" if grace else s["status"])
    if s["status"] == "idle" and s["was"] != "idle":
        say("idle since " + iso(s["since"]))
    elif s["status"] == "busy" and s["was"] == "idle":
        say(f"busy again ({'; '.join(r['busy'])})")


# keep-awake [4h | 90m | 1h30m | 1d | off]: keep the desktop up for that long (at most 72
# hours, from now), or end that; then show until when it holds.
def keep_awake(args):
    t, seconds = time.time(), 0
    if args and args != ["off"]:
        try:
            if len(args) > 1:
                raise ValueError(f"{' '.join(args)!r} is more than one duration")
            seconds = duration_seconds(args[0])
            if not 0 < seconds <= MAX_AWAKE:
                raise ValueError(f"{args[0]!r} is not more than 0 and at most 72h")
        except ValueError as error:
            print(f"keep-awake: {error}; usage: keep-awake [4h | 90m | 1h30m | 1d | off], at most 72h", file=sys.stderr)
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
    except (OSError, Ignored) as error:
        print(f"keep-awake: {error}", file=sys.stderr)
        return 1
    print("keep-awake: " + ("until " + iso(until) if t < until <= t + MAX_AWAKE + 60 else "off"))
    return 0


if __name__ == "__main__":
    if os.path.basename(sys.argv[0]) == "keep-awake":
        sys.exit(keep_awake(sys.argv[1:]))
    agent()
