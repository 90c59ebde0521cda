"""Reading a socket's datagrams in batches: one ``recvmmsg`` for up to `BATCH`.

A counting subscriber needs only the clear RTP header of most datagrams: read into
buffers allocated once, counted where they lie, only the rest copied out (for aioice).
Python's socket module has no ``recvmmsg``; libc's is called through cffi's ABI mode
(cffi comes with pylibsrtp; nothing is compiled). Where libc or ``recvmmsg`` is missing,
`AVAILABLE` is False and callers keep one ``recvfrom`` per datagram.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Callable
from typing import Any

import cffi  # type: ignore[import-untyped]

BATCH = 32
DATAGRAM = 2048
"""Bytes per buffer: loopback media datagrams are at most ~1250 (a longer one would be
cut, and its packet counted as received, though aioice would not get it whole)."""
_MSG_DONTWAIT = 0x40
_NAME = 28  # sizeof(struct sockaddr_in6)
_AF_INET6 = int(socket.AF_INET6)
_PORT = struct.Struct("!H")

_ffi = cffi.FFI()
_ffi.cdef(
    """
    struct iovec { void *iov_base; size_t iov_len; };
    struct msghdr {
        void *msg_name; unsigned int msg_namelen; struct iovec *msg_iov; size_t msg_iovlen;
        void *msg_control; size_t msg_controllen; int msg_flags;
    };
    struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; };
    int recvmmsg(int sockfd, struct mmsghdr *msgvec, unsigned int vlen, int flags,
                 void *timeout);
    """
)
_WORDS = _ffi.sizeof("struct mmsghdr") // 4
_LEN_WORD = _ffi.offsetof("struct mmsghdr", "msg_len") // 4
_NAMELEN_WORD = _ffi.offsetof("struct msghdr", "msg_namelen") // 4
try:
    _libc: Any = _ffi.dlopen(None)
    _recvmmsg = _libc.recvmmsg
except (OSError, AttributeError):
    AVAILABLE = False
else:
    AVAILABLE = True

ViewHandler = Callable[[memoryview, int, int], bool]
"""``handler(buffer, offset, length)``: True when it consumed the datagram there."""


class BatchReader:
    """A `sfu.aiortc_adapter.testing.Drain` reading with ``recvmmsg`` into its own
    buffers; `handler` sees each media datagram (first byte 128-191) where it lies."""

    def __init__(self, handler: ViewHandler) -> None:
        self._handler = handler
        self._data = _ffi.new(f"char[{BATCH * DATAGRAM}]")
        self._names = _ffi.new(f"char[{BATCH * _NAME}]")
        self._iov = _ffi.new(f"struct iovec[{BATCH}]")
        self._messages = _ffi.new(f"struct mmsghdr[{BATCH}]")
        for i in range(BATCH):
            self._iov[i].iov_base = self._data + i * DATAGRAM
            self._iov[i].iov_len = DATAGRAM
            header = self._messages[i].msg_hdr
            header.msg_name = self._names + i * _NAME
            header.msg_namelen = _NAME
            header.msg_iov = _ffi.addressof(self._iov[i])
            header.msg_iovlen = 1
        self._view = memoryview(_ffi.buffer(self._data))
        self._name_view = memoryview(_ffi.buffer(self._names))
        # The headers as 32-bit words: each datagram's length and name length without a
        # cffi attribute access per datagram (those cost more than counting it).
        self._words = memoryview(_ffi.buffer(self._messages)).cast("I")
        self.batches = 0
        self.datagrams = 0

    def __call__(self, sock: socket.socket, pass_on: Callable[[bytes, Any], None]) -> None:
        fd = sock.fileno()
        if fd < 0:
            return
        messages, view, words, handler = self._messages, self._view, self._words, self._handler
        while True:
            got = _recvmmsg(fd, messages, BATCH, _MSG_DONTWAIT, _ffi.NULL)
            if got <= 0:
                return
            self.batches += 1
            self.datagrams += got
            for i in range(got):
                offset, length = i * DATAGRAM, words[i * _WORDS + _LEN_WORD]
                first = view[offset] if length else 0
                if not (127 < first < 192 and handler(view, offset, length)):
                    pass_on(bytes(view[offset : offset + length]), self._address(i))
                words[i * _WORDS + _NAMELEN_WORD] = _NAME  # the kernel set this address's
            if got < BATCH:
                return

    def _address(self, index: int) -> tuple[str, int] | tuple[str, int, int, int]:
        name = self._name_view[index * _NAME : (index + 1) * _NAME]
        family = int.from_bytes(name[0:2], "little")
        port = _PORT.unpack_from(name, 2)[0]
        if family == _AF_INET6:
            return socket.inet_ntop(socket.AF_INET6, bytes(name[8:24])), port, 0, 0
        return socket.inet_ntop(socket.AF_INET, bytes(name[4:8])), port
