/* Stream: everything about one outgoing RTP stream (one DirectRtpSender) that a send
 * needs, in one place for both send paths: numbering and timestamp rebasing (the rules
 * of sfu.rtp_rewriter, which the Python fallback runs), the NACK history, the header
 * (SSRC, payload type, extensions with the abs-send-time offset), the route (socket,
 * address, SRTP session) and the counters sender reports read. */
#include "fanout.h"

#include <errno.h>
#include <structmember.h>
#include <time.h>

#define SEQUENCE_MASK 0xFFFF
#define HALF_SEQUENCE 0x8000
#define HISTORY_MASK (HISTORY_SIZE - 1)
#define SR_UPDATE_MASK 15 /* direct_send._SR_UPDATE_MASK */

static int
is_gso_unsupported(int status)
{
    /* direct_send._GSO_UNSUPPORTED */
    return status == EINVAL || status == EIO || status == ENOPROTOOPT || status == EOPNOTSUPP;
}

/* RtpRewriter.frame: number a frame of `count` packets and keep it for NACKs. */
static void
number(Stream *self, PyObject *sequence, Py_ssize_t count, long long pts, int keyframe,
       int32_t picture_id, uint16_t *first, uint32_t *timestamp)
{
    uint16_t seq = self->sequence_number;
    Py_ssize_t i;

    if (self->switching) {
        self->offset = self->last + (self->step > self->gap ? self->step : self->gap) - pts;
        self->switching = 0;
    }
    pts += self->offset;
    self->last = pts;
    self->has_last = 1;
    *timestamp = (uint32_t)((long long)self->origin + pts);
    *first = seq;
    if (keyframe) {
        self->keyframe_start = seq;
        self->has_keyframe_start = 1;
    }
    for (i = 0; i < count; i++) {
        HistorySlot *slot = &self->history[seq & HISTORY_MASK];
        Py_INCREF(sequence);
        Py_XSETREF(slot->payloads, sequence); /* frees only bytes and their container */
        slot->first = *first;
        slot->timestamp = *timestamp;
        slot->picture_id = picture_id;
        seq = (seq + 1) & SEQUENCE_MASK;
    }
    self->sequence_number = seq;
}

static void
count_sent(Stream *self, Py_ssize_t packets, long long octets, uint32_t timestamp)
{
    self->packets_sent += packets;
    self->octets += octets;
    if ((self->frames & SR_UPDATE_MASK) == 1) {
        self->sr_wall = seconds_of(CLOCK_REALTIME);
        self->sr_rtp = timestamp;
        self->has_sr = 1;
    }
}

/* DirectRtpSender.send_frame past its route check, on a routed stream: number, stamp,
 * build, protect, send (once more one packet per call if the kernel cannot segment),
 * count. Returns SENT, GSO_RETRIED or the errno that broke the route. */
int
stream_send(Stream *self, const Payloads *payloads, PyObject *sequence, long long pts,
            int keyframe, int32_t picture_id, int gso)
{
    uint16_t first;
    uint32_t timestamp;
    long long octets = 0;
    int status, protect_status = 0;

    number(self, sequence, payloads->count, pts, keyframe, picture_id, &first, &timestamp);
    if (self->send_time_at >= 0)
        stamp_abs_send_time(self->extension + self->send_time_at);
#define SEND(with_gso)                                                                        \
    send_packets(self->fd, (struct sockaddr *)&self->to, self->to_len, self->protect,          \
                 self->session, self->first_byte, self->payload_type, first, timestamp,        \
                 self->ssrc, self->extension, self->extension_len, payloads, picture_id, 1,    \
                 with_gso, &octets, &protect_status)
    status = SEND(gso);
    if (gso && is_gso_unsupported(status)) {
        /* Nothing was sent (the segmented call comes first); the SRTP policy allows
         * protecting the same sequence numbers again. */
        status = SEND(0);
        if (status == 0 || status == EAGAIN || status == EWOULDBLOCK)
            status = GSO_RETRIED;
    }
#undef SEND
    if (status == EAGAIN || status == EWOULDBLOCK)
        status = SENT; /* socket buffer full: the frame is dropped, NACK recovers */
    count_sent(self, payloads->count, octets, timestamp);
    return status;
}

static int
Stream_init(Stream *self, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"step", "sequence_number", "rtx_sequence_number",
                            "timestamp_origin", NULL};
    long long step;
    unsigned int seq, rtx, origin;

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "LIII", names, &step, &seq, &rtx, &origin))
        return -1;
    self->step = step;
    self->sequence_number = seq & SEQUENCE_MASK;
    self->rtx_sequence_number = rtx & SEQUENCE_MASK;
    self->origin = origin;
    self->payload_type = -1;
    self->first_byte = 0x80;
    self->send_time_at = -1;
    self->fd = -1;
    self->next_picture_id = NO_PICTURE_ID;
    self->deferred_at = -1;
    return 0;
}

static void
clear_route(Stream *self)
{
    self->fd = -1;
    self->protect = NULL;
    self->session = NULL;
    Py_CLEAR(self->route);
}

static void
Stream_dealloc(Stream *self)
{
    int i;

    for (i = 0; i < HISTORY_SIZE; i++)
        Py_CLEAR(self->history[i].payloads);
    clear_route(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Stream_bind(Stream *self, PyObject *args)
{
    unsigned int ssrc;
    int payload_type, first_byte, send_time_at;
    const char *extension;
    Py_ssize_t extension_len;

    if (!PyArg_ParseTuple(args, "Iiiy#i", &ssrc, &payload_type, &first_byte, &extension,
                          &extension_len, &send_time_at))
        return NULL;
    if (payload_type < 0 || payload_type > 0x7F || first_byte < 0 || first_byte > 0xFF
        || extension_len > EXTENSION_MAX || send_time_at < -1
        || (send_time_at >= 0 && send_time_at + 3 > extension_len)) {
        PyErr_SetString(PyExc_ValueError, "bad stream parameters");
        return NULL;
    }
    self->ssrc = ssrc;
    self->payload_type = payload_type;
    self->first_byte = (unsigned char)first_byte;
    memcpy(self->extension, extension, extension_len);
    self->extension_len = extension_len;
    self->send_time_at = send_time_at;
    Py_RETURN_NONE;
}

static PyObject *
Stream_set_route(Stream *self, PyObject *const *args, Py_ssize_t nargs)
{
    long long fd;
    struct sockaddr_storage to;
    socklen_t to_len;
    protect_fn protect;
    void *session;

    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "set_route(owner, fd, address, protect, session)");
        return NULL;
    }
    if (as_uint(args[1], "fd", INT32_MAX, &fd) < 0 || as_sockaddr(args[2], &to, &to_len) < 0
        || (protect = (protect_fn)as_pointer(args[3], "protect")) == NULL
        || (session = as_pointer(args[4], "session")) == NULL)
        return NULL;
    clear_route(self);
    Py_INCREF(args[0]);
    self->route = args[0];
    self->fd = (int)fd;
    self->to = to;
    self->to_len = to_len;
    self->protect = protect;
    self->session = session;
    Py_RETURN_NONE;
}

static PyObject *
Stream_clear_route(Stream *self, PyObject *Py_UNUSED(ignored))
{
    clear_route(self);
    Py_RETURN_NONE;
}

static PyObject *
Stream_switch_source(Stream *self, PyObject *args)
{
    long long gap = 0;

    if (!PyArg_ParseTuple(args, "|L", &gap))
        return NULL;
    self->switching = self->has_last;
    self->gap = gap;
    Py_RETURN_NONE;
}

static PyObject *
Stream_frame(Stream *self, PyObject *args)
{
    long long pts;
    PyObject *sequence;
    int keyframe = 0;
    Payloads payloads;
    uint16_t first;
    uint32_t timestamp;

    if (!PyArg_ParseTuple(args, "LO|p", &pts, &sequence, &keyframe)
        || payloads_from(sequence, &payloads) < 0)
        return NULL;
    number(self, sequence, payloads.count, pts, keyframe, NO_PICTURE_ID, &first, &timestamp);
    return Py_BuildValue("(HI)", first, timestamp);
}

static PyObject *
Stream_resend(Stream *self, PyObject *arg)
{
    long long seq;
    HistorySlot *slot;
    Py_ssize_t index, count;
    PyObject *payload, *result;

    if (as_uint(arg, "sequence_number", SEQUENCE_MASK, &seq) < 0)
        return NULL;
    slot = &self->history[seq & HISTORY_MASK];
    if (slot->payloads == NULL)
        Py_RETURN_NONE;
    if (self->has_keyframe_start) {
        int before = (self->keyframe_start - seq) & SEQUENCE_MASK;
        if (before > 0 && before < HALF_SEQUENCE)
            Py_RETURN_NONE; /* before the last keyframe: nothing needs it any more */
    }
    index = (seq - slot->first) & SEQUENCE_MASK;
    count = PySequence_Fast_GET_SIZE(slot->payloads);
    if (index >= count)
        Py_RETURN_NONE; /* the slot belongs to another frame */
    payload = PySequence_Fast_ITEMS(slot->payloads)[index];
    if (slot->picture_id == NO_PICTURE_ID)
        Py_INCREF(payload);
    else if ((payload = with_picture_id(payload, slot->picture_id)) == NULL)
        return NULL;
    result = Py_BuildValue("(NnIO)", payload, index, slot->timestamp,
                           index == count - 1 ? Py_True : Py_False);
    return result;
}

static PyObject *
Stream_next_rtx_sequence_number(Stream *self, PyObject *Py_UNUSED(ignored))
{
    uint16_t seq = self->rtx_sequence_number;

    self->rtx_sequence_number = (seq + 1) & SEQUENCE_MASK;
    return PyLong_FromLong(seq);
}

static PyObject *
Stream_stamp(Stream *self, PyObject *Py_UNUSED(ignored))
{
    if (self->send_time_at >= 0)
        stamp_abs_send_time(self->extension + self->send_time_at);
    return PyBytes_FromStringAndSize((const char *)self->extension, self->extension_len);
}

static PyObject *
Stream_count_sent(Stream *self, PyObject *args)
{
    Py_ssize_t packets;
    long long octets;
    unsigned int timestamp;

    if (!PyArg_ParseTuple(args, "nLI", &packets, &octets, &timestamp))
        return NULL;
    count_sent(self, packets, octets, timestamp);
    Py_RETURN_NONE;
}

static PyObject *
Stream_send(Stream *self, PyObject *args)
{
    PyObject *sequence;
    long long pts;
    int keyframe, gso;
    Payloads payloads;

    if (!PyArg_ParseTuple(args, "OLpp", &sequence, &pts, &keyframe, &gso)
        || payloads_from(sequence, &payloads) < 0)
        return NULL;
    if (self->fd < 0 || self->payload_type < 0) {
        PyErr_SetString(PyExc_RuntimeError, "the stream has no route");
        return NULL;
    }
    return PyLong_FromLong(stream_send(self, &payloads, sequence, pts, keyframe,
                                       NO_PICTURE_ID, gso));
}

static PyObject *
get_next_sequence_number(Stream *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(self->sequence_number);
}

static PyObject *
get_routed(Stream *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->fd >= 0);
}

static PyObject *
get_sr_wall(Stream *self, void *Py_UNUSED(closure))
{
    if (!self->has_sr)
        Py_RETURN_NONE;
    return PyFloat_FromDouble(self->sr_wall);
}

static PyObject *
get_next_picture_id(Stream *self, void *Py_UNUSED(closure))
{
    if (self->next_picture_id == NO_PICTURE_ID)
        Py_RETURN_NONE;
    return PyLong_FromLong(self->next_picture_id);
}

static int
set_next_picture_id(Stream *self, PyObject *value, void *Py_UNUSED(closure))
{
    long long id;

    if (value == NULL || value == Py_None) {
        self->next_picture_id = NO_PICTURE_ID;
        return 0;
    }
    if (as_uint(value, "next_picture_id", 0x7FFF, &id) < 0)
        return -1;
    self->next_picture_id = (int32_t)id;
    return 0;
}

static PyMethodDef Stream_methods[] = {
    {"bind", (PyCFunction)Stream_bind, METH_VARARGS,
     "bind(ssrc, payload_type, first_byte, extension, send_time_at)"},
    {"set_route", (PyCFunction)(void (*)(void))Stream_set_route, METH_FASTCALL,
     "set_route(owner, fd, address, protect, session): send there; owner is kept alive"},
    {"clear_route", (PyCFunction)Stream_clear_route, METH_NOARGS, "forget the route"},
    {"switch_source", (PyCFunction)Stream_switch_source, METH_VARARGS, "switch_source(gap=0)"},
    {"frame", (PyCFunction)Stream_frame, METH_VARARGS,
     "frame(pts, payloads, keyframe=False) -> (first sequence number, timestamp)"},
    {"resend", (PyCFunction)Stream_resend, METH_O,
     "resend(sequence_number) -> (payload, position, timestamp, marker) or None"},
    {"next_rtx_sequence_number", (PyCFunction)Stream_next_rtx_sequence_number, METH_NOARGS,
     NULL},
    {"stamp", (PyCFunction)Stream_stamp, METH_NOARGS,
     "the header extension block, abs-send-time stamped now"},
    {"count_sent", (PyCFunction)Stream_count_sent, METH_VARARGS,
     "count_sent(packets, octets, timestamp): a frame the Python path sent"},
    {"send", (PyCFunction)Stream_send, METH_VARARGS,
     "send(payloads, pts, keyframe, gso) -> status: number, stamp, send and count a frame"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Stream_members[] = {
    {"packets_sent", T_LONGLONG, offsetof(Stream, packets_sent), READONLY, NULL},
    {"octets", T_LONGLONG, offsetof(Stream, octets), READONLY, NULL},
    {"frames", T_LONGLONG, offsetof(Stream, frames), 0, "send_frame calls since detach"},
    {"sr_rtp", T_UINT, offsetof(Stream, sr_rtp), READONLY, NULL},
    {"ssrc", T_UINT, offsetof(Stream, ssrc), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef Stream_getset[] = {
    {"next_sequence_number", (getter)get_next_sequence_number, NULL, NULL, NULL},
    {"routed", (getter)get_routed, NULL, NULL, NULL},
    {"sr_wall", (getter)get_sr_wall, NULL, NULL, NULL},
    {"next_picture_id", (getter)get_next_picture_id, (setter)set_next_picture_id, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject StreamType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sfu._fanout.Stream",
    .tp_doc = "One outgoing RTP stream's numbering, history, header, route and counters.",
    .tp_basicsize = sizeof(Stream),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Stream_init,
    .tp_dealloc = (destructor)Stream_dealloc,
    .tp_methods = Stream_methods,
    .tp_members = Stream_members,
    .tp_getset = Stream_getset,
};
