"""Build of the optional native extension ``jaxlstm.core._native._lstm`` (everything else is in
pyproject.toml).

The extension is compiled against the XLA FFI headers that jaxlib ships (jaxlib is a build
requirement in pyproject.toml). It is optional: if jaxlib's headers are missing or the compiler
fails, the package installs without it and ``jaxlstm.native.why_unavailable()`` says so. The
ISA-specific code selects its instruction set with ``#pragma GCC target`` inside the sources, so
every file takes the same flags and the binary runs on any x86-64 CPU (the ISA is chosen at run
time).
"""

import os
import platform
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _jaxlib_version():
    import jaxlib

    return jaxlib.__version__


def _jaxlib_include():
    try:
        import jaxlib
    except ImportError:
        return None
    path = os.path.join(os.path.dirname(os.path.abspath(jaxlib.__file__)), "include")
    return path if os.path.exists(os.path.join(path, "xla", "ffi", "api", "ffi.h")) else None


class OptionalBuildExt(build_ext):
    """build_ext that reports a failed native build as a warning instead of failing the install."""

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:  # compiler missing or failing: the pure-JAX paths still work
            sys.stderr.write(
                f"WARNING: jaxlstm's native extension {ext.name} was not built ({e}); "
                "jaxlstm.native.available() will be False.\n"
            )


def _extensions():
    include = _jaxlib_include()
    if include is None:
        sys.stderr.write(
            "WARNING: jaxlib's XLA FFI headers were not found; jaxlstm's native extension is not built.\n"
        )
        return []
    if platform.machine().lower() not in ("x86_64", "amd64") or sys.platform == "win32":
        sys.stderr.write("WARNING: jaxlstm's native extension needs x86-64 Linux/macOS; skipped.\n")
        return []
    src = os.path.join("jaxlstm", "core", "_native")
    return [
        Extension(
            "jaxlstm.core._native._lstm",
            sources=[os.path.join(src, f) for f in ("lstm.cc", "kernels_avx2.cc", "kernels_avx512.cc")],
            depends=[os.path.join(src, f) for f in ("lstm_kernels.h", "kernels_impl.h")],
            language="c++",
            # -isystem: jaxlib's headers are not ours to warn about.
            extra_compile_args=[
                "-std=c++17",
                "-O3",
                "-g0",
                "-fvisibility=hidden",
                "-fno-math-errno",
                "-isystem",
                include,
            ],
            define_macros=[("JAXLSTM_BUILT_JAXLIB", f'"{_jaxlib_version()}"')],
            optional=True,
        )
    ]


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
