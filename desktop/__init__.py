"""deep-learning-desktop: a GPU deep learning desktop on AWS as a Pulumi component.

Other Pulumi programs use it as a library::

    from desktop import DeepLearningDesktop, DesktopArgs
    DeepLearningDesktop("alice", DesktopArgs(s3_bucket=..., vpc_id=..., ...))
"""

from desktop.component import DeepLearningDesktop
from desktop.config import ConfigError, DesktopArgs

__all__ = ["ConfigError", "DeepLearningDesktop", "DesktopArgs"]
