# SPDX-License-Identifier: Apache-2.0
# PlatformIO extra script (pre) for every firmware env: adds the sources that live outside
# firmware/ or depend on the build:
#  - kernels/: the portable kernels (src/ref), each replaced by its ARMv7E-M variant from
#    src/opt/dsp when the board's CPU has the DSP extension (Cortex-M4/M7/M33); BITPATH_KERNELS=ref|dsp
#    overrides. Kernels are compiled with -O2 (the rest of the firmware with the platform's -Os).
#  - the model: the generated model.c in $BITPATH_MODEL_DIR (see `bitpath codegen`), or, when that
#    is unset, the hand-written test model in firmware/testmodel.
import os
from pathlib import Path

Import("env")  # noqa: F821 (SCons injects Import)

DSP_CPUS = {"cortex-m4", "cortex-m7", "cortex-m33", "cortex-m35p", "cortex-m55", "cortex-m85"}

root = Path(env.subst("$PROJECT_DIR"))  # noqa: F821
cpu = env.BoardConfig().get("build.cpu", "")  # noqa: F821
variant = os.environ.get("BITPATH_KERNELS") or ("dsp" if cpu in DSP_CPUS else "ref")
if variant not in ("ref", "dsp"):
    env.Exit("Error: BITPATH_KERNELS must be 'ref' or 'dsp', got %r" % variant)  # noqa: F821

kernels = root / "kernels" / "src"
overridden = sorted(p.name for p in (kernels / "opt" / "dsp").glob("*.c")) if variant == "dsp" else []
kfilter = ["+<ref/*.c>"] + ["-<ref/%s>" % n for n in overridden]
if variant == "dsp":
    kfilter.append("+<opt/dsp/*.c>")

def _kernels_o2(node_env, node):
    # The platform compiles with -Os. The kernels are the hot loops: -O2 for them alone. This runs
    # before the platform's builder adds its flags, so the object keeps $CCFLAGS and puts -O2 in
    # CPPFLAGS, which the C command line places after CCFLAGS (the last -O wins).
    return node_env.Object(node, CPPFLAGS=["-O2"])


env.AddBuildMiddleware(_kernels_o2, str(kernels / "*"))  # noqa: F821
env.Append(PIOBUILDFILES=env.CollectBuildFiles("$BUILD_DIR/bp_kernels", str(kernels), kfilter))  # noqa: F821

model_dir = os.environ.get("BITPATH_MODEL_DIR")
if model_dir:
    mdir = Path(model_dir).resolve()
    if not (mdir / "model.c").is_file():
        env.Exit("Error: BITPATH_MODEL_DIR=%s has no model.c (generate one with `bitpath codegen`)" % mdir)  # noqa: F821
    env.Append(PIOBUILDFILES=env.CollectBuildFiles("$BUILD_DIR/bp_model", str(mdir), ["+<model.c>"]))  # noqa: F821
else:
    mdir = root / "firmware" / "testmodel"
    env.Append(PIOBUILDFILES=env.CollectBuildFiles("$BUILD_DIR/bp_testmodel", str(mdir), ["+<*.c>"]))  # noqa: F821
env.Append(CPPDEFINES=[("BP_KERNELS_VARIANT", '\\"%s\\"' % variant)])  # noqa: F821
print("bitpath: kernels=%s (cpu %s), model=%s" % (variant, cpu or "?", mdir))
