# SPDX-License-Identifier: Apache-2.0
"""bitpath's local PlatformIO platform: system arm-none-eabi-gcc, no registry packages."""

from platformio.public import PlatformBase


class BitpathcortexmPlatform(PlatformBase):
    """Nothing to resolve: the toolchain comes from the system PATH (Debian gcc-arm-none-eabi)."""
