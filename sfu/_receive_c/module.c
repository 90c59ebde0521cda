/* The native receive path of a publish connection: SRTP datagrams in (read in batches
 * with recvmmsg, or handed in one at a time), encoded frames out.
 *
 * Per datagram, without running Python: SRTP unprotect on the connection's own libsrtp
 * session (srtp_unprotect by address, from pylibsrtp's binding), RTP header, CSRC,
 * header-extension (audio level) and padding parsing, demultiplexing by SSRC, receive
 * statistics (those of aiortc's StreamStatistics, for the receiver reports), RTX
 * unwrapping, NACK bookkeeping (aiortc's NackGenerator policy), and frame assembly:
 * VP8/H.264 frames released on the marker bit as soon as complete (the same rules as
 * sfu/assembler.py's VideoFrameAssembler), audio packets passed through (the rules of
 * its AudioFramePassthrough). What Python gets is a list of events per call: one per
 * frame, audio level, loss, NACK, and the datagrams that are not SRTP (STUN, DTLS,
 * SRTCP) for the Python path. With a direct hand-off (direct.c), a stream's audio
 * frames and non-key video frames go straight to the C fan-out instead, and Python
 * takes a tally of them a few times a second. Typed front: sfu/native_receive.py. */
#include "receive.h"

/* Datagrams of one recvmmsg; the GIL is held for a whole call and nothing in it runs
 * Python code that could re-enter, so no two calls use them at once. */
_Alignas(16) unsigned char buffers[BATCH][SLOT_LEN];
struct mmsghdr messages[BATCH];
struct iovec vectors[BATCH];
struct sockaddr_storage addresses[BATCH];

/* Up to BATCH datagrams of `fd` into `buffers`, without waiting: their number, 0 or -1
 * when there are none (EAGAIN, or an error asyncio's own read would only log). */
int
receive_batch(int fd)
{
    int i;

    for (i = 0; i < BATCH; i++) {
        vectors[i].iov_base = buffers[i];
        vectors[i].iov_len = SLOT_LEN;
        memset(&messages[i].msg_hdr, 0, sizeof(struct msghdr));
        messages[i].msg_hdr.msg_iov = &vectors[i];
        messages[i].msg_hdr.msg_iovlen = 1;
        messages[i].msg_hdr.msg_name = &addresses[i];
        messages[i].msg_hdr.msg_namelen = sizeof(addresses[i]);
    }
    return recvmmsg(fd, messages, BATCH, MSG_DONTWAIT, NULL);
}

/* ------------------------------------------------------------------ the type */

static int
Receiver_init(Receiver *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"unprotect", "session", "keep", "audio_level_id", "max_wait",
                               NULL};
    PyObject *unprotect, *session, *keep;
    void *function;
    int audio_level_id = -1;
    double max_wait = 0.3;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO|id", keywords, &unprotect, &session,
                                     &keep, &audio_level_id, &max_wait))
        return -1;
    if (srtp_arguments(unprotect, "unprotect", session, &function, &self->session) < 0)
        return -1;
    self->unprotect = (unprotect_fn)function;
    Py_INCREF(keep);
    Py_XSETREF(self->keep, keep);
    self->audio_level_id = audio_level_id;
    self->max_wait = max_wait;
    guard_init(&self->guard);
    return 0;
}

static Py_ssize_t index_of(Receiver *self, uint32_t ssrc);

/* Removes the stream at `index` and the RTX streams that retransmit it. */
static void
remove_at(Receiver *self, Py_ssize_t index)
{
    Stream *s = self->streams[index];
    Py_ssize_t i;

    if (self->last == s)
        self->last = NULL;
    memmove(&self->streams[index], &self->streams[index + 1],
            (size_t)(self->count - index - 1) * sizeof(Stream *));
    self->count--;
    for (i = self->count - 1; i >= 0; i--) {
        if (self->streams[i]->media == s) {
            self->streams[i]->media = NULL;
            remove_at(self, i);
            i = self->count; /* the array moved under us: scan again */
        }
    }
    free_stream(s);
}

static void
Receiver_dealloc(Receiver *self)
{
    while (self->count > 0)
        remove_at(self, self->count - 1);
    PyMem_Free(self->streams);
    Py_XDECREF(self->keep);
    Py_XDECREF(self->events);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static Py_ssize_t
index_of(Receiver *self, uint32_t ssrc)
{
    Py_ssize_t i;

    for (i = 0; i < self->count; i++) {
        if (self->streams[i]->ssrc == ssrc)
            return i;
    }
    return -1;
}

static Stream *
new_stream(Receiver *self, uint32_t ssrc)
{
    Stream *s;

    if (index_of(self, ssrc) >= 0) {
        PyErr_Format(PyExc_ValueError, "SSRC %lu is already added", (unsigned long)ssrc);
        return NULL;
    }
    if (self->count == self->capacity) {
        Py_ssize_t capacity = self->capacity ? self->capacity * 2 : 8;
        Stream **streams = PyMem_Realloc(self->streams, (size_t)capacity * sizeof(Stream *));
        if (streams == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        self->streams = streams;
        self->capacity = capacity;
    }
    s = PyMem_Calloc(1, sizeof(Stream));
    if (s == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    s->ssrc = ssrc;
    s->blocked_since = -1;
    reset_tally(s);
    self->streams[self->count++] = s;
    return s;
}

static PyObject *
Receiver_add_stream(Receiver *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"ssrc", "kind", "payload_type", "clock_rate", "token", NULL};
    uint32_t ssrc, clock_rate;
    int kind, payload_type;
    PyObject *token;
    Stream *s;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&iiO&O", keywords, as_uint32, &ssrc,
                                     &kind, &payload_type, as_uint32, &clock_rate, &token))
        return NULL;
    if (kind < KIND_AUDIO || kind > KIND_H264 || payload_type < 0 ||
        payload_type > 127 || clock_rate == 0 || clock_rate > 1000000) {
        PyErr_SetString(PyExc_ValueError, "add_stream: argument out of range");
        return NULL;
    }
    s = new_stream(self, ssrc);
    if (s == NULL)
        return NULL;
    s->kind = kind;
    s->payload_type = (uint8_t)payload_type;
    s->clock_rate = (uint32_t)clock_rate;
    guard_cap_stream(self, s);
    Py_INCREF(token);
    s->token = token;
    if (kind != KIND_AUDIO) {
        s->ring = PyMem_Calloc(RING, sizeof(Slot));
        if (s->ring == NULL) {
            remove_at(self, self->count - 1);
            return PyErr_NoMemory();
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
Receiver_add_rtx(Receiver *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"ssrc", "media_ssrc", "payload_type", NULL};
    uint32_t ssrc, media_ssrc;
    int payload_type;
    Stream *media, *s;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&O&i", keywords, as_uint32, &ssrc,
                                     as_uint32, &media_ssrc, &payload_type))
        return NULL;
    if (payload_type < 0 || payload_type > 127) {
        PyErr_SetString(PyExc_ValueError, "add_rtx: argument out of range");
        return NULL;
    }
    media = find_stream(self, media_ssrc);
    if (media == NULL || media->kind == KIND_RTX || media->kind == KIND_AUDIO) {
        PyErr_Format(PyExc_ValueError, "no video stream of SSRC %lu", (unsigned long)media_ssrc);
        return NULL;
    }
    s = new_stream(self, ssrc);
    if (s == NULL)
        return NULL;
    s->kind = KIND_RTX;
    s->payload_type = (uint8_t)payload_type;
    s->clock_rate = media->clock_rate;
    s->media = media;
    Py_INCREF(media->token);
    s->token = media->token;
    Py_RETURN_NONE;
}

static PyObject *
Receiver_remove(Receiver *self, PyObject *arg)
{
    uint32_t ssrc;
    Py_ssize_t index;

    if (!as_uint32(arg, &ssrc) || refuse_reentry(self) < 0)
        return NULL;
    index = index_of(self, ssrc);
    if (index < 0)
        Py_RETURN_FALSE;
    remove_at(self, index);
    Py_RETURN_TRUE;
}

static PyObject *
begin(Receiver *self)
{
    if (self->events != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Receiver called re-entrantly");
        return NULL;
    }
    self->events = PyList_New(0);
    self->calls++;
    return self->events;
}

static PyObject *
finish(Receiver *self, int status)
{
    PyObject *events = self->events;

    self->events = NULL;
    if (status < 0) {
        Py_XDECREF(events);
        return NULL;
    }
    return events;
}

static PyObject *
Receiver_drain(Receiver *self, PyObject *arg)
{
    int fd = PyLong_AsLong(arg), i, received, total = 0, status = 0;

    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (begin(self) == NULL)
        return NULL;
    while (total < MAX_PER_DRAIN && status == 0) {
        double now;
        received = receive_batch(fd);
        if (received <= 0)
            break; /* EAGAIN, or an error asyncio's own read would only log */
        now = wall_clock();
        for (i = 0; i < received && status == 0; i++) {
            PyObject *address = NULL;
            unsigned char *p = buffers[i];
            if (messages[i].msg_hdr.msg_flags & MSG_TRUNC) {
                self->malformed++;
                continue;
            }
            if (messages[i].msg_len < 1 || p[0] < 128 || p[0] > 191) {
                address = address_of(&addresses[i]);
                if (address == NULL) {
                    status = -1;
                    break;
                }
            }
            status = handle_datagram(self, p, (int)messages[i].msg_len, address, now);
            Py_XDECREF(address);
        }
        total += received;
        if (received < BATCH)
            break;
    }
    return finish(self, status);
}

static PyObject *
Receiver_feed(Receiver *self, PyObject *args)
{
    Py_buffer data;
    PyObject *address = Py_None;
    int status;

    if (!PyArg_ParseTuple(args, "y*|O", &data, &address))
        return NULL;
    if (data.len > SLOT_LEN) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "datagram too long");
        return NULL;
    }
    if (begin(self) == NULL) {
        PyBuffer_Release(&data);
        return NULL;
    }
    memcpy(buffers[0], data.buf, (size_t)data.len);
    status = handle_datagram(self, buffers[0], (int)data.len, address, wall_clock());
    PyBuffer_Release(&data);
    return finish(self, status);
}

static PyObject *
Receiver_feed_plain(Receiver *self, PyObject *arg)
{
    Py_buffer data;
    int status;

    if (PyObject_GetBuffer(arg, &data, PyBUF_SIMPLE) < 0)
        return NULL;
    if (begin(self) == NULL) {
        PyBuffer_Release(&data);
        return NULL;
    }
    status = handle_rtp(self, data.buf, data.len, wall_clock());
    PyBuffer_Release(&data);
    return finish(self, status);
}

static PyObject *
Receiver_statistics(Receiver *self, PyObject *arg)
{
    uint32_t ssrc;
    Stream *s;

    if (!as_uint32(arg, &ssrc))
        return NULL;
    s = find_stream(self, ssrc);
    if (s == NULL || !s->stats_started)
        Py_RETURN_NONE;
    return Py_BuildValue("(KiiKL)", (unsigned long long)s->received, s->base_seq, s->max_seq,
                         (unsigned long long)s->cycles, (long long)(s->jitter_q4 >> 4));
}

static PyObject *
Receiver_counts(Receiver *self, PyObject *arg)
{
    uint32_t ssrc;
    Stream *s;

    if (!as_uint32(arg, &ssrc))
        return NULL;
    s = find_stream(self, ssrc);
    if (s == NULL)
        Py_RETURN_NONE;
    return Py_BuildValue("{sKsKsKsKsKsKsKsKsK}", "packets", (unsigned long long)s->packets,
                         "frames", (unsigned long long)s->frames, "keyframes",
                         (unsigned long long)s->keyframes, "late_packets",
                         (unsigned long long)s->late_packets, "skipped",
                         (unsigned long long)s->skipped, "silent_frames",
                         (unsigned long long)s->silent_frames, "nacked",
                         (unsigned long long)s->nacked, "dropped",
                         (unsigned long long)s->dropped, "over_cap",
                         (unsigned long long)s->over_cap);
}

static PyObject *
Receiver_get_datagrams(Receiver *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(self->datagrams);
}

static PyObject *
Receiver_get_unprotect_errors(Receiver *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(self->unprotect_errors);
}

static PyObject *
Receiver_get_malformed(Receiver *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(self->malformed);
}

static PyObject *
Receiver_get_ssrcs(Receiver *self, void *Py_UNUSED(closure))
{
    PyObject *list = PyList_New(self->count);
    Py_ssize_t i;

    if (list == NULL)
        return NULL;
    for (i = 0; i < self->count; i++) {
        PyObject *value = PyLong_FromUnsignedLong(self->streams[i]->ssrc);
        if (value == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, value);
    }
    return list;
}

static int
Receiver_traverse(Receiver *self, visitproc visit, void *arg)
{
    Py_ssize_t i;
    int j;

    Py_VISIT(self->keep);
    Py_VISIT(self->events);
    for (i = 0; i < self->count; i++) {
        Stream *s = self->streams[i];
        Py_VISIT(s->token);
        Py_VISIT(s->direct_fn);
        Py_VISIT(s->direct_legs);
        Py_VISIT(s->direct_gso);
        if (s->ring != NULL) {
            for (j = 0; j < RING; j++)
                Py_VISIT(s->ring[j].payload);
        }
    }
    return 0;
}

static int
Receiver_clear(Receiver *self)
{
    while (self->count > 0)
        remove_at(self, self->count - 1);
    Py_CLEAR(self->keep);
    Py_CLEAR(self->events);
    return 0;
}

static PyMethodDef Receiver_methods[] = {
    {"add_stream", (PyCFunction)(void (*)(void))Receiver_add_stream,
     METH_VARARGS | METH_KEYWORDS, NULL},
    {"add_rtx", (PyCFunction)(void (*)(void))Receiver_add_rtx, METH_VARARGS | METH_KEYWORDS,
     NULL},
    {"remove", (PyCFunction)Receiver_remove, METH_O, NULL},
    {"drain", (PyCFunction)Receiver_drain, METH_O, NULL},
    {"feed", (PyCFunction)Receiver_feed, METH_VARARGS, NULL},
    {"feed_plain", (PyCFunction)Receiver_feed_plain, METH_O, NULL},
    {"statistics", (PyCFunction)Receiver_statistics, METH_O, NULL},
    {"counts", (PyCFunction)Receiver_counts, METH_O, NULL},
    {"direct", (PyCFunction)(void (*)(void))Receiver_direct, METH_VARARGS | METH_KEYWORDS,
     NULL},
    {"take", (PyCFunction)Receiver_take, METH_O, NULL},
    {"cap", (PyCFunction)(void (*)(void))Receiver_cap, METH_VARARGS | METH_KEYWORDS, NULL},
    {"refuse", (PyCFunction)Receiver_refuse, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Receiver_getset[] = {
    {"datagrams", (getter)Receiver_get_datagrams, NULL, NULL, NULL},
    {"unprotect_errors", (getter)Receiver_get_unprotect_errors, NULL, NULL, NULL},
    {"malformed", (getter)Receiver_get_malformed, NULL, NULL, NULL},
    {"ssrcs", (getter)Receiver_get_ssrcs, NULL, NULL, NULL},
    {"refused", (getter)Receiver_get_refused, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ReceiverType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sfu._receive.Receiver",
    .tp_basicsize = sizeof(Receiver),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Receiver_init,
    .tp_dealloc = (destructor)Receiver_dealloc,
    .tp_traverse = (traverseproc)Receiver_traverse,
    .tp_clear = (inquiry)Receiver_clear,
    .tp_methods = Receiver_methods,
    .tp_getset = Receiver_getset,
};

static PyMethodDef module_functions[] = {
    {"refused_totals", guard_refused_totals, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "sfu._receive",
    .m_size = -1,
    .m_methods = module_functions,
};

PyMODINIT_FUNC
PyInit__receive(void)
{
    PyObject *m;

    if (PyType_Ready(&ReceiverType) < 0 || PyType_Ready(&ControlReaderType) < 0 ||
        PyType_Ready(&HeaderCountType) < 0 || PyType_Ready(&HeaderCounterType) < 0)
        return NULL;
    m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&ReceiverType);
    Py_INCREF(&ControlReaderType);
    if (PyModule_AddObject(m, "ControlReader", (PyObject *)&ControlReaderType) < 0) {
        Py_DECREF(&ControlReaderType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddObject(m, "Receiver", (PyObject *)&ReceiverType) < 0) {
        Py_DECREF(&ReceiverType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&HeaderCounterType);
    if (PyModule_AddObject(m, "HeaderCounter", (PyObject *)&HeaderCounterType) < 0) {
        Py_DECREF(&HeaderCounterType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&HeaderCountType);
    if (PyModule_AddObject(m, "HeaderCount", (PyObject *)&HeaderCountType) < 0) {
        Py_DECREF(&HeaderCountType);
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "AUDIO", KIND_AUDIO) < 0 ||
        PyModule_AddIntConstant(m, "VP8", KIND_VP8) < 0 ||
        PyModule_AddIntConstant(m, "H264", KIND_H264) < 0 ||
        PyModule_AddIntConstant(m, "FRAME", EV_FRAME) < 0 ||
        PyModule_AddIntConstant(m, "LEVEL", EV_LEVEL) < 0 ||
        PyModule_AddIntConstant(m, "SILENCE", EV_SILENCE) < 0 ||
        PyModule_AddIntConstant(m, "LOSS", EV_LOSS) < 0 ||
        PyModule_AddIntConstant(m, "NACK", EV_NACK) < 0 ||
        PyModule_AddIntConstant(m, "OTHER", EV_OTHER) < 0 ||
        PyModule_AddIntConstant(m, "RTCP", EV_RTCP) < 0 ||
        PyModule_AddIntConstant(m, "UNKNOWN", EV_UNKNOWN) < 0 ||
        PyModule_AddIntConstant(m, "REPORT", EV_REPORT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
