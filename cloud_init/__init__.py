"""EC2 user data for the deep learning desktop: cloud-config plus the boot script.

The boot script is the real file ``cloud_init/boot.sh``; :func:`render` puts the
stack's values at its top as shell-quoted assignments and wraps it, with the
cloud-config part, in a multi-part MIME document.
"""

from cloud_init.render import USER_DATA_LIMIT, UserDataTooLarge, render, split_parts

__all__ = ["USER_DATA_LIMIT", "UserDataTooLarge", "render", "split_parts"]
