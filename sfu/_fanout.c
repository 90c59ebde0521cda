/* One forwarded frame to one subscriber in one call: RTP headers, SRTP protect
 * (libsrtp2's srtp_protect, by address, from pylibsrtp's binding) and one sendmsg
 * with UDP GSO when the packets allow it. The datagrams are byte-identical to those of
 * the Python path (DirectRtpSender.send_frame and _Route in sfu/aiortc_adapter.py).
 * Typed front: sfu/native_send.py. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103 /* linux/udp.h; older libc headers lack it */
#endif

#define RTP_HEADER_LEN 12
#define SRTP_MAX_TRAILER_LEN 144 /* libsrtp2: SRTP_MAX_TAG_LEN + SRTP_MAX_MKI_LEN */
#define SLOT_LEN 2048
#define BATCH 64 /* the kernel's UDP_MAX_SEGMENTS */
#define GSO_MAX_BYTES 60000

typedef int (*protect_fn)(void *session, void *packet, int *len);

/* The packets of the batch being sent, one slot each. The GIL is held for the whole
 * call and nothing in it runs Python code, so no two calls use them at once. Slots are
 * aligned because libsrtp reads the header's words in place. */
static _Alignas(16) unsigned char slots[BATCH][SLOT_LEN];
static struct iovec iov[BATCH];

static int
as_uint(PyObject *obj, const char *name, long long max, long long *out)
{
    int overflow;
    long long value;

    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int", name);
        return -1;
    }
    value = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (value == -1 && PyErr_Occurred())
        return -1;
    if (overflow || value < 0 || value > max) {
        PyErr_Format(PyExc_ValueError, "%s out of range: %R", name, obj);
        return -1;
    }
    *out = value;
    return 0;
}

static void *
as_pointer(PyObject *obj, const char *name)
{
    void *pointer;

    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int", name);
        return NULL;
    }
    pointer = PyLong_AsVoidPtr(obj);
    if (pointer == NULL && !PyErr_Occurred())
        PyErr_Format(PyExc_ValueError, "%s is a null pointer", name);
    return pointer;
}

static PyObject *
sockaddr(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    const char *host;
    Py_ssize_t host_len;
    long long port;

    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "sockaddr() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    if (!PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "host must be a str");
        return NULL;
    }
    host = PyUnicode_AsUTF8AndSize(args[0], &host_len);
    if (host == NULL || as_uint(args[1], "port", 65535, &port) < 0)
        return NULL;
    if ((size_t)host_len == strlen(host)) {
        if (strchr(host, ':') != NULL) {
            struct sockaddr_in6 address = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
            if (inet_pton(AF_INET6, host, &address.sin6_addr) == 1)
                return PyBytes_FromStringAndSize((const char *)&address, sizeof address);
        }
        else {
            struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port)};
            if (inet_pton(AF_INET, host, &address.sin_addr) == 1)
                return PyBytes_FromStringAndSize((const char *)&address, sizeof address);
        }
    }
    PyErr_Format(PyExc_ValueError, "not a numeric IPv4 or IPv6 address: %R", args[0]);
    return NULL;
}

static int
send_one(int fd, const void *packet, size_t len, const struct sockaddr *to, socklen_t to_len)
{
    ssize_t sent;

    /* A non-blocking send is never interrupted in practice; retry like Python (PEP 475)
     * without running signal handlers, which could re-enter and reuse the slots. */
    do
        sent = sendto(fd, packet, len, 0, to, to_len);
    while (sent < 0 && errno == EINTR);
    return sent < 0 ? -1 : 0;
}

/* Send iov[0:count]: one sendmsg the kernel splits every gso_size bytes when gso_size is
 * set and the sizes fit that (a last packet longer than gso_size would be split in
 * two), else one sendto per packet. */
static int
send_batch(int fd, const struct sockaddr *to, socklen_t to_len, int count, uint16_t gso_size)
{
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {
        .msg_name = (void *)to,
        .msg_namelen = to_len,
        .msg_iov = iov,
        .msg_iovlen = count,
        .msg_control = control.buf,
        .msg_controllen = sizeof control.buf,
    };
    struct cmsghdr *cmsg;
    ssize_t sent;
    int i, segmented = gso_size != 0 && count > 1;

    for (i = 0; segmented && i < count; i++)
        if (i < count - 1 ? iov[i].iov_len != gso_size : iov[i].iov_len > gso_size)
            segmented = 0;
    if (!segmented) {
        for (i = 0; i < count; i++)
            if (send_one(fd, iov[i].iov_base, iov[i].iov_len, to, to_len) < 0)
                return -1;
        return 0;
    }
    memset(&control, 0, sizeof control);
    cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = IPPROTO_UDP;
    cmsg->cmsg_type = UDP_SEGMENT;
    cmsg->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(cmsg), &gso_size, sizeof gso_size);
    do
        sent = sendmsg(fd, &msg, 0);
    while (sent < 0 && errno == EINTR);
    return sent < 0 ? -1 : 0;
}

static void
put32(unsigned char *p, uint32_t value)
{
    p[0] = value >> 24;
    p[1] = value >> 16;
    p[2] = value >> 8;
    p[3] = value;
}

static PyObject *
send_frame(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    long long fd, first_byte, payload_type, sequence_number, timestamp, ssrc;
    protect_fn protect;
    void *session;
    struct sockaddr_storage to;
    socklen_t to_len;
    const char *extension;
    Py_ssize_t extension_len, header_len, count, first_len = 0, total = 0, i;
    PyObject **items;
    int marker_on_last, gso, uniform, per_call = BATCH, batch = 0;
    uint16_t gso_size = 0;

    if (nargs != 13) {
        PyErr_Format(PyExc_TypeError, "send_frame() takes 13 arguments (%zd given)", nargs);
        return NULL;
    }
    if (as_uint(args[0], "fd", INT32_MAX, &fd) < 0
        || (protect = (protect_fn)as_pointer(args[2], "protect")) == NULL
        || (session = as_pointer(args[3], "session")) == NULL
        || as_uint(args[4], "first_byte", 0xFF, &first_byte) < 0
        || as_uint(args[5], "payload_type", 0x7F, &payload_type) < 0
        || as_uint(args[6], "sequence_number", 0xFFFF, &sequence_number) < 0
        || as_uint(args[7], "timestamp", 0xFFFFFFFF, &timestamp) < 0
        || as_uint(args[8], "ssrc", 0xFFFFFFFF, &ssrc) < 0
        || (marker_on_last = PyObject_IsTrue(args[11])) < 0
        || (gso = PyObject_IsTrue(args[12])) < 0)
        return NULL;
    if (!PyBytes_Check(args[1]) || !PyBytes_Check(args[9])) {
        PyErr_SetString(PyExc_TypeError, "address and extension must be bytes");
        return NULL;
    }
    to_len = (socklen_t)PyBytes_GET_SIZE(args[1]);
    if (to_len == sizeof(struct sockaddr_in) || to_len == sizeof(struct sockaddr_in6))
        memcpy(&to, PyBytes_AS_STRING(args[1]), to_len);
    if (!(to_len == sizeof(struct sockaddr_in) && to.ss_family == AF_INET)
        && !(to_len == sizeof(struct sockaddr_in6) && to.ss_family == AF_INET6)) {
        PyErr_SetString(PyExc_ValueError, "address is not a packed sockaddr_in or sockaddr_in6");
        return NULL;
    }
    extension = PyBytes_AS_STRING(args[9]);
    extension_len = PyBytes_GET_SIZE(args[9]);
    header_len = RTP_HEADER_LEN + extension_len;
    if (!PyList_Check(args[10]) && !PyTuple_Check(args[10])) {
        PyErr_SetString(PyExc_TypeError, "payloads must be a list or a tuple");
        return NULL;
    }
    count = PySequence_Fast_GET_SIZE(args[10]);
    items = PySequence_Fast_ITEMS(args[10]);

    /* Everything is checked before the first packet goes out: an error never leaves half
     * a frame sent. */
    uniform = gso && count > 1;
    for (i = 0; i < count; i++) {
        Py_ssize_t len;
        if (!PyBytes_Check(items[i])) {
            PyErr_Format(PyExc_TypeError, "payloads[%zd] is not bytes", i);
            return NULL;
        }
        len = PyBytes_GET_SIZE(items[i]);
        if (header_len + len + SRTP_MAX_TRAILER_LEN > SLOT_LEN) {
            PyErr_Format(PyExc_ValueError, "payloads[%zd] is too long: %zd bytes", i, len);
            return NULL;
        }
        if (i == 0)
            first_len = len;
        else if (i < count - 1 ? len != first_len : len > first_len)
            uniform = 0;
        total += len;
    }

    for (i = 0; i < count; i++) {
        unsigned char *packet = slots[batch];
        Py_ssize_t len = PyBytes_GET_SIZE(items[i]);
        uint16_t seq = (uint16_t)(sequence_number + i);
        int marker = marker_on_last && i == count - 1 ? 0x80 : 0;
        int packet_len = (int)(header_len + len), status;

        packet[0] = (unsigned char)first_byte;
        packet[1] = (unsigned char)(marker | payload_type);
        packet[2] = seq >> 8;
        packet[3] = seq & 0xFF;
        put32(packet + 4, (uint32_t)timestamp);
        put32(packet + 8, (uint32_t)ssrc);
        memcpy(packet + RTP_HEADER_LEN, extension, extension_len);
        memcpy(packet + header_len, PyBytes_AS_STRING(items[i]), len);
        status = protect(session, packet, &packet_len);
        if (status != 0) {
            PyErr_Format(PyExc_ValueError, "srtp_protect failed: %d", status);
            return NULL;
        }
        iov[batch].iov_base = packet;
        iov[batch].iov_len = packet_len;
        batch++;
        if (i == 0 && uniform) {
            /* Segments per sendmsg: as many as fit in 60 kB, at most 64 (as in Python). */
            gso_size = (uint16_t)packet_len;
            per_call = GSO_MAX_BYTES / packet_len < BATCH ? GSO_MAX_BYTES / packet_len : BATCH;
        }
        if (batch == per_call || i == count - 1) {
            if (send_batch(fd, (struct sockaddr *)&to, to_len, batch, gso_size) < 0)
                return PyErr_SetFromErrno(PyExc_OSError);
            batch = 0;
        }
    }
    return PyLong_FromSsize_t(total);
}

static PyMethodDef methods[] = {
    {"sockaddr", (PyCFunction)(void (*)(void))sockaddr, METH_FASTCALL,
     "sockaddr(host, port, /)\n--\n\nA packed sockaddr_in, or sockaddr_in6 when host contains ':'."},
    {"send_frame", (PyCFunction)(void (*)(void))send_frame, METH_FASTCALL,
     "send_frame(fd, address, protect, session, first_byte, payload_type, sequence_number,"
     " timestamp, ssrc, extension, payloads, marker_on_last, gso, /)\n--\n\n"
     "Send one frame's RTP packets, SRTP-protected, to address; return the payload bytes\n"
     "sent. The GIL is held throughout: fd should be non-blocking."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "sfu._fanout",
    .m_doc = "RTP fan-out to one subscriber per call (see sfu/native_send.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__fanout(void)
{
    return PyModule_Create(&module);
}
