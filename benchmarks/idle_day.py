"""Figure (not a test): how long the desktop runs in one simulated day, against 24 hours.

Drives the real idle agent (tests/idle_sandbox.py: faketime, fake /proc, stub dcv and
nvidia-smi, a local IMDS with IdleStopMinutes) through a typical day, one run a minute
while the desktop runs, as its systemd timer would:

- 09:00 the person starts the desktop (it boots) and works, DCV connected, light CPU;
- 12:00 lunch: the DCV client is closed; nothing runs;
- 13:00 back: the person starts the desktop again if it stopped, and works;
- 17:30 a training job starts: GPU at 90%, 1.5 cores, 20 Mbit/s of data for 10 minutes;
- 18:00 the person leaves, the client closed; the job trains overnight;
- 03:00 the job ends and uploads its 40 GB of results to S3 at 100 Mbit/s (0.1 core):
  53 minutes, until 03:53; the desktop must stay up until then, and stop idleStopMinutes
  after; nothing runs until 09:00, when the simulated day ends.

    .venv/bin/python benchmarks/idle_day.py [IDLE_STOP_MINUTES]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from idle_sandbox import MIDNIGHT, Desktop, Imds  # noqa: E402

DAY = MIDNIGHT + 9 * 3600  # Monday 09:00 UTC
UPLOAD_FROM = 27 * 60  # 03:00 the next morning
UPLOAD_MINUTES = round(40e9 * 8 / 100e6 / 60)  # 40 GB at 100 Mbit/s: 53 minutes


def activity(minute_of_day: int) -> dict:
    """What the person and their job do in this minute (minutes since 00:00 of the day)."""
    hour = (minute_of_day // 60) % 24
    working = 9 <= hour < 12 or 13 <= hour < 18
    training = minute_of_day >= 17 * 60 + 30 and (minute_of_day < 27 * 60)
    return {
        "dcv": 1 if working else 0,
        "gpu": 90 if training else 0,
        "cores": 1.5 if training else (0.3 if working else 0.02),
        "mbit": 20.0 if training and minute_of_day < 17 * 60 + 40 else 0.05,
        "tx": 100.0 if UPLOAD_FROM <= minute_of_day < UPLOAD_FROM + UPLOAD_MINUTES else 0.02,
    }


def main(policy: str = "30") -> None:
    imds = Imds()
    started = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        box = Desktop(Path(scratch), imds=imds, gpu=True, start=DAY, uptime=0, policy=policy)
        running, minutes_up, stops, boots = True, 0, [], [9 * 60]
        for minute in range(9 * 60 + 1, 33 * 60 + 1):
            now = activity(minute)
            if not running:
                # The person starts the desktop when they come back to work at 13:00 (and 09:00).
                if minute == 13 * 60:
                    box.reboot(after_seconds=0)
                    running = True
                    boots.append(minute)
                box.t = DAY + (minute - 9 * 60) * 60
                continue
            minutes_up += 1
            box.set(dcv=now["dcv"], gpu=now["gpu"])
            box.minute(cores=now["cores"] + (0.1 if now["tx"] > 1 else 0), mbit=now["mbit"], tx=now["tx"])
            if box.poweroffs > len(stops):
                stops.append(minute)
                running = False
        console = box.console_lines()
    imds.close()

    def clock(m: int) -> str:
        return f"{(m // 60) % 24:02d}:{m % 60:02d}"

    print(f"idleStopMinutes {policy}: the desktop ran {minutes_up} of 1,440 minutes "
          f"({minutes_up / 14.4:.0f}% of 24 h); started at {', '.join(clock(m) for m in boots)}; "
          f"stopped itself at {', '.join(clock(m) for m in stops)}")
    print("console lines of the agent:")
    for line in console:
        print("  " + line)
    print(f"({time.time() - started:.0f} s to simulate)")


if __name__ == "__main__":
    main(*sys.argv[1:])
