"""SRTP protection without pylibsrtp's per-call allocation, the pointers the C send path
(`sfu.native_send`) protects with and those the C receive path (`sfu.native_receive`)
unprotects with. All reach into pylibsrtp's session and binding."""

from __future__ import annotations

from collections.abc import Callable

import pylibsrtp
from pylibsrtp import _binding as srtp_binding

from sfu.aiortc_adapter.internals import SRTP_SESSION_FIELDS, require


def lean_protect(session: pylibsrtp.Session) -> Callable[[bytes], bytes]:
    """`session.protect`, minus its per-call allocation (about a third of its cost).

    Uses the session's own buffer, like pylibsrtp does; calls never interleave (one
    thread, each call synchronous).
    """
    for name in SRTP_SESSION_FIELDS:
        require(session, name)
    cdata = session._cdata
    srtp = session._srtp[0]
    length = srtp_binding.ffi.new("int *")
    buffer = srtp_binding.ffi.buffer(cdata)
    memmove = srtp_binding.ffi.memmove
    srtp_protect = srtp_binding.lib.srtp_protect
    limit = len(buffer) - pylibsrtp.SRTP_MAX_TRAILER_LEN
    errors = pylibsrtp.ERRORS

    def protect(packet: bytes, _keep: object = session) -> bytes:
        size = len(packet)
        if size > limit:
            raise ValueError("packet is too long")
        memmove(cdata, packet, size)
        length[0] = size
        status = srtp_protect(srtp, cdata, length)
        if status:
            raise pylibsrtp.Error(errors[status])
        result: bytes = buffer[0 : length[0]]
        return result

    return protect


def srtp_pointers(session: pylibsrtp.Session) -> tuple[int, int]:
    """The addresses of libsrtp's ``srtp_protect`` and of `session`'s ``srtp_t``, for
    `native_send.send_frame`; valid while `session` lives (keep a reference)."""
    require(session, "_srtp")
    ffi, lib = srtp_binding.ffi, srtp_binding.lib
    return (
        int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_protect"))),
        int(ffi.cast("uintptr_t", session._srtp[0])),
    )


def srtp_unprotect_rtcp_pointers(session: pylibsrtp.Session) -> tuple[int, int]:
    """The addresses of libsrtp's ``srtp_unprotect_rtcp`` and of `session`'s ``srtp_t``,
    for `native_receive.ControlReader`; valid while `session` lives (pass it as ``keep``)."""
    require(session, "_srtp")
    ffi, lib = srtp_binding.ffi, srtp_binding.lib
    return (
        int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_unprotect_rtcp"))),
        int(ffi.cast("uintptr_t", session._srtp[0])),
    )


def srtp_unprotect_pointers(session: pylibsrtp.Session) -> tuple[int, int]:
    """The addresses of libsrtp's ``srtp_unprotect`` and of `session`'s ``srtp_t``, for
    `native_receive.Receiver`; valid while `session` lives (pass it as ``keep``)."""
    require(session, "_srtp")
    ffi, lib = srtp_binding.ffi, srtp_binding.lib
    return (
        int(ffi.cast("uintptr_t", ffi.addressof(lib, "srtp_unprotect"))),
        int(ffi.cast("uintptr_t", session._srtp[0])),
    )
