# SPDX-License-Identifier: Apache-2.0
"""SCons build script of bitpath's local platform.

Compiles and links with the system arm-none-eabi-gcc (Debian gcc-arm-none-eabi), so `pio run`
needs no registry package. The firmware brings its own startup code and linker script
(`board_build.ldscript`), so the link is -nostartfiles with newlib-nano only for memcpy/memset.
"""

import shutil

from SCons.Script import AlwaysBuild, Default, DefaultEnvironment

env = DefaultEnvironment()
board = env.BoardConfig()

for tool in ("arm-none-eabi-gcc", "arm-none-eabi-objcopy", "arm-none-eabi-size"):
    if shutil.which(tool) is None:
        env.Exit(
            "Error: %s not found on PATH. Install the system toolchain "
            "(Debian/Ubuntu: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi)." % tool
        )

cpu = board.get("build.cpu")
fpu = board.get("build.fpu", "")
machine = ["-mcpu=%s" % cpu, "-mthumb"]
if fpu:
    machine += ["-mfpu=%s" % fpu, "-mfloat-abi=hard"]
else:
    machine += ["-mfloat-abi=soft"]

env.Replace(
    AR="arm-none-eabi-ar",
    AS="arm-none-eabi-gcc",
    CC="arm-none-eabi-gcc",
    CXX="arm-none-eabi-g++",
    GDB="arm-none-eabi-gdb",
    OBJCOPY="arm-none-eabi-objcopy",
    RANLIB="arm-none-eabi-ranlib",
    SIZETOOL="arm-none-eabi-size",
    ARFLAGS=["rc"],
    SIZEPROGREGEXP=r"^(?:\.isr_vector|\.text|\.rodata|\.ARM\.exidx|\.data)\s+(\d+).*",
    SIZEDATAREGEXP=r"^(?:\.data|\.bss|\.stack)\s+(\d+).*",
    SIZECHECKCMD="$SIZETOOL -A -d $SOURCES",
    SIZEPRINTCMD="$SIZETOOL -B -d $SOURCES",
    PROGNAME="firmware",
    PROGSUFFIX=".elf",
)

env.Append(
    ASFLAGS=machine + ["-x", "assembler-with-cpp"],
    CCFLAGS=machine + ["-Os", "-g3", "-ffunction-sections", "-fdata-sections", "-fno-common"],
    CFLAGS=["-std=c11"],
    CPPDEFINES=[("F_CPU", "$BOARD_F_CPU")],
    LINKFLAGS=machine
    + [
        "-Os",
        "-nostartfiles",
        "--specs=nano.specs",
        "-Wl,--gc-sections",
        "-Wl,--print-memory-usage",
        "-Wl,-Map,${BUILD_DIR}/firmware.map",
    ],
    LIBS=["c", "gcc"],
)

if not board.get("build.ldscript", "") and not env.get("LDSCRIPT_PATH"):
    env.Exit("Error: set board_build.ldscript in platformio.ini (the firmware brings its own linker script).")

target_elf = env.BuildProgram()
target_bin = env.Command(
    "${BUILD_DIR}/${PROGNAME}.bin",
    target_elf,
    env.VerboseAction("$OBJCOPY -O binary $SOURCE $TARGET", "Building $TARGET"),
)
target_hex = env.Command(
    "${BUILD_DIR}/${PROGNAME}.hex",
    target_elf,
    env.VerboseAction("$OBJCOPY -O ihex $SOURCE $TARGET", "Building $TARGET"),
)
target_buildprog = env.Alias("buildprog", [target_bin, target_hex])

target_size = env.Alias("size", target_elf, env.VerboseAction("$SIZEPRINTCMD", "Calculating size $SOURCE"))
AlwaysBuild(target_size)

# Upload. The emulated board has nothing to flash; real boards go through pyOCD when it is installed.
protocol = env.subst("$UPLOAD_PROTOCOL") or board.get("upload.protocol", "")
if protocol == "qemu":
    upload_actions = [
        env.VerboseAction(
            lambda *_a, **_k: env.Exit(
                "Error: the emulated board is not flashed; run `bitpath emulate` (QEMU) instead."
            ),
            "Upload",
        )
    ]
elif protocol == "pyocd":

    def _pyocd(target, source, env):  # noqa: ARG001 (SCons action signature)
        if shutil.which("pyocd") is None:
            env.Exit(
                "Error: pyocd not found. `pip install pyocd` (or use the official platform env, e.g. "
                "`pio run -e nucleo_f446re -t upload`, which needs PlatformIO's registry)."
            )
        pyocd_target = board.get("debug.pyocd_target")
        return env.Execute("pyocd flash --target %s %s $UPLOAD_FLAGS" % (pyocd_target, source[0].get_abspath()))

    upload_actions = [env.VerboseAction(_pyocd, "Uploading $SOURCE with pyOCD")]
else:
    upload_actions = [
        env.VerboseAction(
            lambda *_a, **_k: env.Exit("Error: no upload protocol for this board in the local platform."),
            "Upload",
        )
    ]
AlwaysBuild(env.Alias("upload", target_elf, upload_actions))

Default([target_buildprog])
