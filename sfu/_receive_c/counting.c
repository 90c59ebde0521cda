/* Counting streams from their clear RTP headers, for a load generator's subscribers.
 *
 * An SRTP packet's RTP header is in clear: SSRC, sequence number and marker bit give
 * packets, frames (video frames end on a marker; every audio packet is one) and the
 * number expected (from the extended highest sequence number) per stream without
 * decrypting anything. A HeaderCounter reads a socket with recvmmsg, counts each media
 * datagram of a watched SSRC where it lies, and returns the others (STUN, DTLS, SRTCP,
 * unknown SSRCs, and the streams that are received whole: `consume` false) for the
 * connection's own stack. The same rules as scripts/load/counting.py's PacketCount,
 * which is what runs where this extension is not built. */
#include "receive.h"

#define MAX_COUNTED_PER_DRAIN 1024

typedef struct {
    PyObject_HEAD
    uint32_t ssrc;
    int audio, consume;
    unsigned long long packets, bytes, frames;
    int started;
    uint16_t highest16;
    long long base, highest; /* extended sequence numbers */
    double first_frame_at, last_frame_at; /* monotonic; 0: none yet */
} HeaderCount;

typedef struct {
    PyObject_HEAD
    HeaderCount **table; /* open addressing by SSRC; NULL: empty slot */
    Py_ssize_t capacity, count;
    unsigned long long datagrams, batches;
} HeaderCounter;

static void
count_packet(HeaderCount *c, uint16_t seq, int marker, double now, Py_ssize_t size)
{
    uint16_t delta;

    c->packets++;
    c->bytes += (unsigned long long)size;
    if (!c->started) {
        c->started = 1;
        c->highest16 = seq;
        c->base = c->highest = seq;
    } else {
        delta = (uint16_t)(seq - c->highest16);
        if (delta < 0x8000) {
            c->highest += delta;
            c->highest16 = seq;
        }
    }
    if (marker || c->audio) {
        c->frames++;
        c->last_frame_at = now;
        if (c->first_frame_at == 0)
            c->first_frame_at = now;
    }
}

/* ------------------------------------------------------------ HeaderCount */

static void
HeaderCount_dealloc(HeaderCount *self)
{
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
optional_time(double at)
{
    if (at == 0)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(at);
}

static PyObject *
HeaderCount_get_packets(HeaderCount *self, void *closure)
{
    return PyLong_FromUnsignedLongLong(self->packets);
}

static PyObject *
HeaderCount_get_bytes(HeaderCount *self, void *closure)
{
    return PyLong_FromUnsignedLongLong(self->bytes);
}

static PyObject *
HeaderCount_get_frames(HeaderCount *self, void *closure)
{
    return PyLong_FromUnsignedLongLong(self->frames);
}

static PyObject *
HeaderCount_get_expected(HeaderCount *self, void *closure)
{
    return PyLong_FromLongLong(self->started ? self->highest - self->base + 1 : 0);
}

static PyObject *
HeaderCount_get_first_frame_at(HeaderCount *self, void *closure)
{
    return optional_time(self->first_frame_at);
}

static PyObject *
HeaderCount_get_last_frame_at(HeaderCount *self, void *closure)
{
    return optional_time(self->last_frame_at);
}

static PyObject *
HeaderCount_get_ssrc(HeaderCount *self, void *closure)
{
    return PyLong_FromUnsignedLong(self->ssrc);
}

static PyObject *
HeaderCount_get_consume(HeaderCount *self, void *closure)
{
    return PyBool_FromLong(self->consume);
}

static PyGetSetDef HeaderCount_getset[] = {
    {"packets", (getter)HeaderCount_get_packets, NULL, NULL, NULL},
    {"bytes", (getter)HeaderCount_get_bytes, NULL, NULL, NULL},
    {"frames", (getter)HeaderCount_get_frames, NULL, NULL, NULL},
    {"expected", (getter)HeaderCount_get_expected, NULL, NULL, NULL},
    {"first_frame_at", (getter)HeaderCount_get_first_frame_at, NULL, NULL, NULL},
    {"last_frame_at", (getter)HeaderCount_get_last_frame_at, NULL, NULL, NULL},
    {"ssrc", (getter)HeaderCount_get_ssrc, NULL, NULL, NULL},
    {"consume", (getter)HeaderCount_get_consume, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject HeaderCountType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sfu._receive.HeaderCount",
    .tp_basicsize = sizeof(HeaderCount),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_dealloc = (destructor)HeaderCount_dealloc,
    .tp_getset = HeaderCount_getset,
};

/* ---------------------------------------------------------- HeaderCounter */

static Py_ssize_t
slot_of(HeaderCounter *self, uint32_t ssrc)
{
    Py_ssize_t mask = self->capacity - 1, i = (Py_ssize_t)((ssrc * 2654435761u) & mask);

    while (self->table[i] != NULL && self->table[i]->ssrc != ssrc)
        i = (i + 1) & mask;
    return i;
}

static HeaderCount *
find_count(HeaderCounter *self, uint32_t ssrc)
{
    return self->capacity == 0 ? NULL : self->table[slot_of(self, ssrc)];
}

/* Rebuilds the table with room for `count` entries at most half full: 0, or -1 with
 * MemoryError. */
static int
rebuild(HeaderCounter *self, Py_ssize_t count)
{
    HeaderCount **old = self->table;
    Py_ssize_t old_capacity = self->capacity, capacity = 16, i;

    while (capacity < 2 * (count + 1))
        capacity *= 2;
    self->table = PyMem_Calloc((size_t)capacity, sizeof(HeaderCount *));
    if (self->table == NULL) {
        self->table = old;
        PyErr_NoMemory();
        return -1;
    }
    self->capacity = capacity;
    for (i = 0; i < old_capacity; i++) {
        if (old[i] != NULL)
            self->table[slot_of(self, old[i]->ssrc)] = old[i];
    }
    PyMem_Free(old);
    return 0;
}

static PyObject *
HeaderCounter_watch(HeaderCounter *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"ssrc", "audio", "consume", NULL};
    uint32_t ssrc;
    int audio, consume;
    HeaderCount *count;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&pp", keywords, as_uint32, &ssrc, &audio,
                                     &consume))
        return NULL;
    count = find_count(self, ssrc);
    if (count != NULL) {
        PyErr_Format(PyExc_ValueError, "SSRC %u is already watched", (unsigned)ssrc);
        return NULL;
    }
    count = PyObject_New(HeaderCount, &HeaderCountType);
    if (count == NULL)
        return NULL;
    memset((char *)count + sizeof(PyObject), 0, sizeof(HeaderCount) - sizeof(PyObject));
    count->ssrc = ssrc;
    count->audio = audio;
    count->consume = consume;
    if (2 * (self->count + 1) > self->capacity) {
        if (rebuild(self, self->count + 1) < 0) {
            Py_DECREF(count);
            return NULL;
        }
    }
    self->table[slot_of(self, ssrc)] = count;
    self->count++;
    Py_INCREF(count); /* one for the table, one returned */
    return (PyObject *)count;
}

static PyObject *
HeaderCounter_forget(HeaderCounter *self, PyObject *arg)
{
    uint32_t ssrc;
    Py_ssize_t i;
    HeaderCount *count, **kept;
    Py_ssize_t n = 0;

    if (!as_uint32(arg, &ssrc))
        return NULL;
    count = find_count(self, ssrc);
    if (count == NULL)
        Py_RETURN_FALSE;
    /* Open addressing has no cheap delete: take the others out and put them back. */
    kept = PyMem_Calloc((size_t)self->capacity, sizeof(HeaderCount *));
    if (kept == NULL)
        return PyErr_NoMemory();
    for (i = 0; i < self->capacity; i++) {
        if (self->table[i] != NULL && self->table[i] != count)
            kept[n++] = self->table[i];
    }
    memset(self->table, 0, (size_t)self->capacity * sizeof(HeaderCount *));
    for (i = 0; i < n; i++)
        self->table[slot_of(self, kept[i]->ssrc)] = kept[i];
    PyMem_Free(kept);
    self->count--;
    Py_DECREF(count);
    Py_RETURN_TRUE;
}

/* Counts the datagram if it is RTP of a watched SSRC: 1 when it is consumed (counted
 * only), 0 when it goes on. */
static int
count_datagram(HeaderCounter *self, const unsigned char *p, Py_ssize_t n, double now)
{
    HeaderCount *count;
    uint32_t ssrc;

    if (n < 12 || p[0] < 128 || p[0] > 191 || (p[1] >= 192 && p[1] <= 223))
        return 0;
    ssrc = ((uint32_t)p[8] << 24) | ((uint32_t)p[9] << 16) | ((uint32_t)p[10] << 8) | p[11];
    count = find_count(self, ssrc);
    if (count == NULL)
        return 0;
    count_packet(count, (uint16_t)((p[2] << 8) | p[3]), p[1] & 0x80, now, n);
    return count->consume;
}

static PyObject *
HeaderCounter_drain(HeaderCounter *self, PyObject *arg)
{
    int fd = PyLong_AsLong(arg), got, i, total = 0;
    PyObject *passed, *item, *address;
    double now;

    if (fd == -1 && PyErr_Occurred())
        return NULL;
    passed = PyList_New(0);
    if (passed == NULL)
        return NULL;
    do {
        got = receive_batch(fd);
        if (got <= 0)
            break;
        self->batches++;
        self->datagrams += (unsigned long long)got;
        total += got;
        now = monotonic();
        for (i = 0; i < got; i++) {
            if (count_datagram(self, buffers[i], messages[i].msg_len, now))
                continue;
            address = address_of(&addresses[i]);
            if (address == NULL)
                goto error;
            item = Py_BuildValue("(y#N)", (const char *)buffers[i],
                                 (Py_ssize_t)messages[i].msg_len, address);
            if (item == NULL || PyList_Append(passed, item) < 0) {
                Py_XDECREF(item);
                goto error;
            }
            Py_DECREF(item);
        }
    } while (got == BATCH && total < MAX_COUNTED_PER_DRAIN);
    return passed;
error:
    Py_DECREF(passed);
    return NULL;
}

static PyObject *
HeaderCounter_feed(HeaderCounter *self, PyObject *arg)
{
    Py_buffer view;
    int consumed;

    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    consumed = count_datagram(self, view.buf, view.len, monotonic());
    PyBuffer_Release(&view);
    return PyBool_FromLong(consumed);
}

static PyObject *
HeaderCounter_get_datagrams(HeaderCounter *self, void *closure)
{
    return PyLong_FromUnsignedLongLong(self->datagrams);
}

static PyObject *
HeaderCounter_get_batches(HeaderCounter *self, void *closure)
{
    return PyLong_FromUnsignedLongLong(self->batches);
}

static PyObject *
HeaderCounter_get_watched(HeaderCounter *self, void *closure)
{
    return PyLong_FromSsize_t(self->count);
}

static void
HeaderCounter_dealloc(HeaderCounter *self)
{
    Py_ssize_t i;

    for (i = 0; i < self->capacity; i++)
        Py_XDECREF(self->table[i]);
    PyMem_Free(self->table);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef HeaderCounter_methods[] = {
    {"watch", (PyCFunction)(void (*)(void))HeaderCounter_watch, METH_VARARGS | METH_KEYWORDS,
     NULL},
    {"forget", (PyCFunction)HeaderCounter_forget, METH_O, NULL},
    {"drain", (PyCFunction)HeaderCounter_drain, METH_O, NULL},
    {"feed", (PyCFunction)HeaderCounter_feed, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef HeaderCounter_getset[] = {
    {"datagrams", (getter)HeaderCounter_get_datagrams, NULL, NULL, NULL},
    {"batches", (getter)HeaderCounter_get_batches, NULL, NULL, NULL},
    {"watched", (getter)HeaderCounter_get_watched, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject HeaderCounterType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sfu._receive.HeaderCounter",
    .tp_basicsize = sizeof(HeaderCounter),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)HeaderCounter_dealloc,
    .tp_methods = HeaderCounter_methods,
    .tp_getset = HeaderCounter_getset,
};
