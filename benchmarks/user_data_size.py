"""The user data's size with normal and with the longest legal values, and the boot files'
parameter size (a measurement, not a test: tests/test_cloud_init_render.py asserts the limits).

    .venv/bin/python benchmarks/user_data_size.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for entry in (ROOT, ROOT / "tests"):
    sys.path.insert(0, str(entry))

from cloud_init import SIZE_GOAL, USER_DATA_LIMIT, compress, encode, render  # noqa: E402
from cloud_init.boot_files import ADVANCED_LIMIT, STANDARD_LIMIT, payload, tier  # noqa: E402
from test_cloud_init_render import LONGEST, NORMAL  # noqa: E402


def main() -> int:
    for name, values in (("normal", NORMAL), ("longest", LONGEST)):
        user_data = render(**values)
        print(f"user data, {name} values: {len(user_data.encode()):,} bytes raw, {len(compress(user_data)):,} gzip, "
              f"{len(encode(user_data)):,} base64 (goal {SIZE_GOAL:,}, EC2's limit {USER_DATA_LIMIT:,})")
    value = payload()
    print(f"boot files' parameter: {len(value):,} characters ({tier(value)} tier; "
          f"Standard holds {STANDARD_LIMIT:,}, Advanced {ADVANCED_LIMIT:,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
