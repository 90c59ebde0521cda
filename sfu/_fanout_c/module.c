/* The module: sockaddr(), send_frame() (one frame to one subscriber, every argument
 * given), the Stream and Leg types and fanout() (stream.c, leg.c). Typed fronts:
 * sfu/native_send.py, sfu/fanout.py. */
#include "fanout.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

PyObject *fanout(PyObject *module, PyObject *const *args, Py_ssize_t nargs);

int
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

int
as_sockaddr(PyObject *obj, struct sockaddr_storage *to, socklen_t *to_len)
{
    if (!PyBytes_Check(obj)) {
        PyErr_SetString(PyExc_TypeError, "address must be bytes");
        return -1;
    }
    *to_len = (socklen_t)PyBytes_GET_SIZE(obj);
    if (*to_len == sizeof(struct sockaddr_in) || *to_len == sizeof(struct sockaddr_in6))
        memcpy(to, PyBytes_AS_STRING(obj), *to_len);
    if (!(*to_len == sizeof(struct sockaddr_in) && to->ss_family == AF_INET)
        && !(*to_len == sizeof(struct sockaddr_in6) && to->ss_family == AF_INET6)) {
        PyErr_SetString(PyExc_ValueError, "address is not a packed sockaddr_in or sockaddr_in6");
        return -1;
    }
    return 0;
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

static PyObject *
send_frame(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    long long fd, first_byte, payload_type, sequence_number, timestamp, ssrc, octets = 0;
    protect_fn protect;
    void *session;
    struct sockaddr_storage to;
    socklen_t to_len;
    Py_ssize_t extension_len, i;
    Payloads payloads;
    int marker_on_last, gso, status, protect_status = 0;

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
    if (as_sockaddr(args[1], &to, &to_len) < 0)
        return NULL;
    extension_len = PyBytes_GET_SIZE(args[9]);
    /* Everything is checked before the first packet goes out: an error never leaves half
     * a frame sent. */
    if (payloads_from(args[10], &payloads) < 0)
        return NULL;
    for (i = 0; i < payloads.count; i++) {
        Py_ssize_t len = PyBytes_GET_SIZE(payloads.items[i]);
        if (RTP_HEADER_LEN + extension_len + len + SRTP_MAX_TRAILER_LEN > SLOT_LEN) {
            PyErr_Format(PyExc_ValueError, "payloads[%zd] is too long: %zd bytes", i, len);
            return NULL;
        }
    }
    status = send_packets((int)fd, (struct sockaddr *)&to, to_len, protect, session,
                          (unsigned char)first_byte, (int)payload_type,
                          (uint16_t)sequence_number, (uint32_t)timestamp, (uint32_t)ssrc,
                          (const unsigned char *)PyBytes_AS_STRING(args[9]), extension_len,
                          &payloads, NO_PICTURE_ID, marker_on_last, gso, &octets,
                          &protect_status);
    if (status == EPROTO) {
        PyErr_Format(PyExc_ValueError, "srtp_protect failed: %d", protect_status);
        return NULL;
    }
    if (status != 0) {
        errno = status;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLongLong(octets);
}

static PyMethodDef methods[] = {
    {"sockaddr", (PyCFunction)(void (*)(void))sockaddr, METH_FASTCALL,
     "sockaddr(host, port, /)\n--\n\nA packed sockaddr_in, or sockaddr_in6 when host contains ':'."},
    {"send_frame", (PyCFunction)(void (*)(void))send_frame, METH_FASTCALL,
     "send_frame(fd, address, protect, session, first_byte, payload_type, sequence_number,"
     " timestamp, ssrc, extension, payloads, marker_on_last, gso, /)\n--\n\n"
     "Send one frame's RTP packets, SRTP-protected, to address; return the payload bytes\n"
     "sent. The GIL is held throughout: fd should be non-blocking."},
    {"fanout", (PyCFunction)(void (*)(void))fanout, METH_FASTCALL,
     "fanout(legs, payloads, pts, keyframe, picture_id, temporal, gso, route_check=..., /)"
     "\n--\n\n"
     "Send one frame to the stream of every leg (see sfu/fanout.py); None, or the\n"
     "[(index, status)] of the legs not simply sent. With route_check, every leg is\n"
     "left to Python on that frame (its route check) and on no other."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "sfu._fanout",
    .m_doc = "The native send path (see sfu/native_send.py and sfu/fanout.py).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__fanout(void)
{
    PyObject *m;

    if (PyType_Ready(&StreamType) < 0 || PyType_Ready(&LegType) < 0)
        return NULL;
    m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Stream", (PyObject *)&StreamType) < 0
        || PyModule_AddObjectRef(m, "Leg", (PyObject *)&LegType) < 0
        || PyModule_AddIntConstant(m, "HISTORY_SIZE", HISTORY_SIZE) < 0
        || PyModule_AddIntConstant(m, "GSO_RETRIED", GSO_RETRIED) < 0
        || PyModule_AddIntConstant(m, "DEFERRED", DEFERRED) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
