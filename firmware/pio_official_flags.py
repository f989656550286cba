# SPDX-License-Identifier: Apache-2.0
# PlatformIO extra script for the *official* platform envs (ststm32, nordicnrf52) in platformio.ini.
# The firmware is bare metal (no `framework`), brings its own startup code and links hard-float:
# the FPU flags must reach the linker too, or it picks the soft-float newlib and refuses the objects.
# (The offline local platform, firmware/pio_platform, sets all of this itself.)
Import("env")  # noqa: F821 (SCons injects Import)

FLAGS = ["-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"]
env.Append(CCFLAGS=FLAGS, ASFLAGS=FLAGS, LINKFLAGS=FLAGS + ["-nostartfiles", "--specs=nano.specs"])  # noqa: F821
