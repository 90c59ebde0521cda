"""The build steps pyproject.toml cannot declare; everything else is there.

- The optional C extension `sfu/_fanout.c`: optional=True, so without a C compiler (or
  Python headers) the install still succeeds and the server sends on its Python path
  (`sfu.native_send.AVAILABLE` is False).
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
    ext_modules=[Extension("sfu._fanout", ["sfu/_fanout.c"], optional=True)],
    cmdclass={"build_py": BuildPyWithWebPage},
)
