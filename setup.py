"""The optional C extension; everything else is in pyproject.toml.

optional=True: without a C compiler (or Python headers) the install still succeeds and the
server sends on its Python path (`sfu.native_send.AVAILABLE` is False).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("sfu._fanout", ["sfu/_fanout.c"], optional=True)])
