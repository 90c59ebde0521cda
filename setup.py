"""The build steps pyproject.toml cannot declare; everything else is there.

- The optional C extensions `sfu/_fanout_c/` and `sfu/_receive_c/`: optional=True, so
  without a C compiler (or Python headers) the install still succeeds and the server
  sends and receives on its Python paths (`sfu.native_send.AVAILABLE` is False).
- The browser client: `web/` is copied into the built package as `api/web`, where an
  installed server finds it (`api/routes/meta_routes.py`); a checkout, editable installs
  included, serves `web/` itself.
"""

from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py

WEB = Path(__file__).resolve().parent / "web"


class BuildPyWithWebPage(build_py):
    """`build_py`, plus the web page as `api/web` in the build (not for editable installs)."""

    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            self.copy_tree(str(WEB), str(Path(self.build_lib) / "api" / "web"))


setup(
    ext_modules=[
        Extension(
            "sfu._fanout",
            [f"sfu/_fanout_c/{name}.c" for name in ("module", "wire", "stream", "leg")],
            depends=["sfu/_fanout_c/fanout.h", "sfu/_native_args.h"],
            extra_compile_args=["-fvisibility=hidden"],  # only PyInit__fanout is public
            optional=True,
        ),
        Extension(
            "sfu._receive",
            [
                f"sfu/_receive_c/{name}.c"
                for name in (
                    "module",
                    "packets",
                    "streams",
                    "codecs",
                    "control",
                    "direct",
                    "counting",
                    "guard",
                )
            ],
            depends=["sfu/_receive_c/receive.h", "sfu/_native_args.h"],
            extra_compile_args=["-fvisibility=hidden"],  # only PyInit__receive is public
            optional=True,
        ),
    ],
    cmdclass={"build_py": BuildPyWithWebPage},
)
