/* The control traffic of a subscribe connection (receiver reports, REMB, NACK, PLI, ICE
 * consent), read in batches with recvmmsg, SRTCP unprotected with the connection's own
 * libsrtp session (srtp_unprotect_rtcp by address).
 *
 * A stock aiortc receiver sends a REMB nearly every time a packet arrives (~60 a second
 * per subscriber at 30 fps, where Chromium sends about one): a standalone REMB arriving
 * within `remb_interval` of the last one passed is dropped before it is unprotected (the
 * first 8 bytes of SRTCP, packet type and format included, are not encrypted), so it
 * costs neither libsrtp nor Python. Dropping an SRTCP packet is like losing it: the
 * replay window only sees indices it never gets. */
#include "receive.h"

#define PT_PSFB 206
#define FMT_REMB 15
#define SRTCP_TRAILER_MIN 14 /* E+index (4) and the shortest auth tag (10) */
/* What one subscriber may make Python handle: its receiver reports, NACKs and PLIs
 * (a few a second per forwarded stream), and ICE consent checks. */
#define RTCP_PER_SECOND 400
#define RTCP_BURST 800
#define OTHER_PER_SECOND 50
#define OTHER_BURST 100

typedef struct {
    PyObject_HEAD
    unprotect_fn unprotect_rtcp;
    void *session;
    PyObject *keep;
    double remb_interval;
    double last_remb; /* monotonic time of the last REMB passed; < 0: none yet */
    Bucket rtcp, other;
    unsigned long long datagrams, rembs_dropped, unprotect_errors, rtcp_dropped, other_dropped;
} ControlReader;

/* A datagram holding one standalone REMB (aiortc sends them so), judged on its clear
 * SRTCP header: PSFB with FMT 15, the whole datagram that packet and the trailer. */
static int
is_standalone_remb(const unsigned char *p, int n)
{
    int length;

    if (n < 8 || (p[0] >> 6) != 2 || (p[0] & 0x1F) != FMT_REMB || p[1] != PT_PSFB)
        return 0;
    length = 4 * (((p[2] << 8) | p[3]) + 1);
    return n - length >= SRTCP_TRAILER_MIN && n - length <= SRTCP_TRAILER_MIN + 16;
}

static int
ControlReader_init(ControlReader *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"unprotect_rtcp", "session", "keep", "remb_interval", NULL};
    PyObject *unprotect, *session, *keep;
    void *function;
    double remb_interval = 0.1;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO|d", keywords, &unprotect, &session,
                                     &keep, &remb_interval))
        return -1;
    if (remb_interval < 0) {
        PyErr_SetString(PyExc_ValueError, "remb_interval must not be negative");
        return -1;
    }
    if (srtp_arguments(unprotect, "unprotect_rtcp", session, &function, &self->session) < 0)
        return -1;
    self->unprotect_rtcp = (unprotect_fn)function;
    Py_INCREF(keep);
    Py_XSETREF(self->keep, keep);
    self->remb_interval = remb_interval;
    self->last_remb = -1;
    bucket_set(&self->rtcp, RTCP_PER_SECOND, RTCP_BURST, monotonic());
    bucket_set(&self->other, OTHER_PER_SECOND, OTHER_BURST, monotonic());
    return 0;
}

static void
ControlReader_dealloc(ControlReader *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->keep);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
ControlReader_traverse(ControlReader *self, visitproc visit, void *arg)
{
    Py_VISIT(self->keep);
    return 0;
}

static int
ControlReader_clear(ControlReader *self)
{
    Py_CLEAR(self->keep);
    return 0;
}

/* One datagram: appended to `events` as (RTCP, plain) or (OTHER, datagram, address);
 * media (which a subscribe connection should not get) is OTHER too, for aioice to drop. */
static int
take(ControlReader *self, PyObject *events, unsigned char *p, int n,
     const struct sockaddr_storage *from, double now)
{
    PyObject *event, *address;
    int length = n, status;

    self->datagrams++;
    if (n >= 2 && p[0] >= 128 && p[0] <= 191 && is_rtcp(p, n)) {
        if (is_standalone_remb(p, n)) {
            if (self->last_remb >= 0 && now - self->last_remb < self->remb_interval) {
                self->rembs_dropped++;
                return 0;
            }
        }
        if (!bucket_take(&self->rtcp, 1, now)) {
            self->rtcp_dropped++;
            guard_count(REFUSED_SUBSCRIBER_RTCP_FLOOD);
            return 0;
        }
        if (self->unprotect_rtcp(self->session, p, &length) != 0) {
            self->unprotect_errors++;
            return 0;
        }
        if (is_standalone_remb(p, n))
            self->last_remb = now;
        event = Py_BuildValue("(iy#)", EV_RTCP, (const char *)p, (Py_ssize_t)length);
    } else {
        if (!bucket_take(&self->other, 1, now)) {
            self->other_dropped++;
            guard_count(REFUSED_SUBSCRIBER_CONTROL_FLOOD);
            return 0;
        }
        address = from != NULL ? address_of(from) : Py_NewRef(Py_None);
        if (address == NULL)
            return -1;
        event = Py_BuildValue("(iy#N)", EV_OTHER, (const char *)p, (Py_ssize_t)n, address);
    }
    if (event == NULL)
        return -1;
    status = PyList_Append(events, event);
    Py_DECREF(event);
    return status;
}

static PyObject *
ControlReader_drain(ControlReader *self, PyObject *arg)
{
    int fd = PyLong_AsLong(arg), i, received, total = 0, status = 0;
    PyObject *events;
    struct timespec clock;
    double now;

    if (fd == -1 && PyErr_Occurred())
        return NULL;
    events = PyList_New(0);
    if (events == NULL)
        return NULL;
    clock_gettime(CLOCK_MONOTONIC, &clock);
    now = (double)clock.tv_sec + (double)clock.tv_nsec * 1e-9;
    while (total < MAX_PER_DRAIN && status == 0) {
        received = receive_batch(fd);
        if (received <= 0)
            break;
        for (i = 0; i < received && status == 0; i++) {
            if (messages[i].msg_hdr.msg_flags & MSG_TRUNC)
                continue;
            status = take(self, events, buffers[i], (int)messages[i].msg_len, &addresses[i], now);
        }
        total += received;
        if (received < BATCH)
            break;
    }
    if (status < 0) {
        Py_DECREF(events);
        return NULL;
    }
    return events;
}

static PyObject *
ControlReader_feed(ControlReader *self, PyObject *args)
{
    Py_buffer data;
    PyObject *events;
    struct timespec clock;
    int status;

    if (!PyArg_ParseTuple(args, "y*", &data))
        return NULL;
    if (data.len > SLOT_LEN) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "datagram too long");
        return NULL;
    }
    events = PyList_New(0);
    if (events == NULL) {
        PyBuffer_Release(&data);
        return NULL;
    }
    memcpy(buffers[0], data.buf, (size_t)data.len);
    clock_gettime(CLOCK_MONOTONIC, &clock);
    status = take(self, events, buffers[0], (int)data.len, NULL,
                  (double)clock.tv_sec + (double)clock.tv_nsec * 1e-9);
    PyBuffer_Release(&data);
    if (status < 0) {
        Py_DECREF(events);
        return NULL;
    }
    return events;
}

static PyObject *
ControlReader_counts(ControlReader *self, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("{sKsKsKsKsK}", "datagrams", self->datagrams, "rembs_dropped",
                         self->rembs_dropped, "unprotect_errors", self->unprotect_errors,
                         "rtcp_dropped", self->rtcp_dropped, "other_dropped",
                         self->other_dropped);
}

static PyMethodDef ControlReader_methods[] = {
    {"drain", (PyCFunction)ControlReader_drain, METH_O, NULL},
    {"feed", (PyCFunction)ControlReader_feed, METH_VARARGS, NULL},
    {"counts", (PyCFunction)ControlReader_counts, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

PyTypeObject ControlReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sfu._receive.ControlReader",
    .tp_basicsize = sizeof(ControlReader),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)ControlReader_init,
    .tp_dealloc = (destructor)ControlReader_dealloc,
    .tp_traverse = (traverseproc)ControlReader_traverse,
    .tp_clear = (inquiry)ControlReader_clear,
    .tp_methods = ControlReader_methods,
};
