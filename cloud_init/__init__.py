"""EC2 user data for the deep learning desktop: cloud-config plus the boot script.

The boot script is the real file ``cloud_init/boot.sh``; :func:`render` puts the
stack's values at its top as shell-quoted assignments and wraps it, with the
cloud-config part, in a multi-part MIME document, which EC2 gets gzip-compressed.
"""

from cloud_init.render import (
    SIZE_GOAL, USER_DATA_LIMIT, UserDataTooLarge, compress, decode, encode, render, split_parts,
)

__all__ = ["SIZE_GOAL", "USER_DATA_LIMIT", "UserDataTooLarge", "compress", "decode", "encode", "render",
           "split_parts"]
