"""Whether the optional C extensions may be used: ``SFU_NATIVE=0`` (or ``false``, ``no``,
``off``) runs the server on the Python paths as if they had not been built, the way
the fallback is tested. Read once, when `sfu.native_send` / `sfu.native_receive` load."""

from __future__ import annotations

import os

ENVIRONMENT_VARIABLE = "SFU_NATIVE"


def native_allowed() -> bool:
    """False when the environment turns the C extensions off."""
    value = os.environ.get(ENVIRONMENT_VARIABLE, "").strip().lower()
    return value not in ("0", "false", "no", "off")
