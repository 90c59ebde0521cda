/* Leg: one consumer's share of the fan-out (the temporal layers it forwards and its
 * frame counters, which its Python path reads and writes too) and fanout(): one frame
 * to the stream of every leg, what Consumer._deliver, DirectOutput.push and
 * DirectRtpSender.send_frame do per consumer, in one call. */
#include "fanout.h"

#include <structmember.h>

#define ROUTE_CHECK_MASK 31 /* direct_send._ROUTE_CHECK_MASK */
#define PICTURE_ID_MASK 0x7FFF
#define ALL_TEMPORAL_LAYERS 3

static int
Leg_init(Leg *self, PyObject *args, PyObject *kwds)
{
    static char *names[] = {NULL};

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "", names))
        return -1;
    self->temporal_target = self->temporal_current = ALL_TEMPORAL_LAYERS;
    return 0;
}

static void
Leg_dealloc(Leg *self)
{
    Py_CLEAR(self->stream);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
get_stream(Leg *self, void *Py_UNUSED(closure))
{
    PyObject *stream = self->stream ? self->stream : Py_None;

    Py_INCREF(stream);
    return stream;
}

static int
set_stream(Leg *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == Py_None)
        value = NULL;
    if (value != NULL && !PyObject_TypeCheck(value, &StreamType)) {
        PyErr_SetString(PyExc_TypeError, "stream must be a Stream or None");
        return -1;
    }
    Py_XINCREF(value);
    Py_XSETREF(self->stream, value);
    return 0;
}

static PyMemberDef Leg_members[] = {
    {"temporal_target", T_INT, offsetof(Leg, temporal_target), 0, NULL},
    {"temporal_current", T_INT, offsetof(Leg, temporal_current), 0, NULL},
    {"frames_forwarded", T_LONGLONG, offsetof(Leg, frames_forwarded), 0, NULL},
    {"frames_thinned", T_LONGLONG, offsetof(Leg, frames_thinned), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef Leg_getset[] = {
    {"stream", (getter)get_stream, (setter)set_stream, "the Stream it sends on (None: none)",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject LegType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "sfu._fanout.Leg",
    .tp_doc = "One consumer's temporal thinning and frame counters.",
    .tp_basicsize = sizeof(Leg),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Leg_init,
    .tp_dealloc = (destructor)Leg_dealloc,
    .tp_members = Leg_members,
    .tp_getset = Leg_getset,
};

static int
report(PyObject **list, Py_ssize_t index, int status)
{
    PyObject *item;

    if (*list == NULL && (*list = PyList_New(0)) == NULL)
        return -1;
    item = Py_BuildValue("(ni)", index, status);
    if (item == NULL || PyList_Append(*list, item) < 0) {
        Py_XDECREF(item);
        return -1;
    }
    Py_DECREF(item);
    return 0;
}

PyObject *
fanout(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *sequence, *reported = NULL, *const *legs;
    Payloads payloads;
    Py_ssize_t leg_count, i;
    long long pts, temporal, picture_id = NO_PICTURE_ID;
    int keyframe, gso, rewritable = 1, route_check = -1;

    if (nargs != 7 && nargs != 8) {
        PyErr_Format(PyExc_TypeError, "fanout() takes 7 or 8 arguments (%zd given)", nargs);
        return NULL;
    }
    /* route_check given: every leg's route is checked on this frame (one report for all
     * of a producer's legs every 32nd of its frames); not given: each stream's 32nd. */
    if (nargs == 8 && (route_check = PyObject_IsTrue(args[7])) < 0)
        return NULL;
    if (!PyList_Check(args[0]) && !PyTuple_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "legs must be a list or a tuple");
        return NULL;
    }
    sequence = args[1];
    pts = PyLong_AsLongLong(args[2]);
    if ((pts == -1 && PyErr_Occurred()) || payloads_from(sequence, &payloads) < 0
        || (keyframe = PyObject_IsTrue(args[3])) < 0
        || (args[4] != Py_None && as_uint(args[4], "picture_id", PICTURE_ID_MASK, &picture_id) < 0)
        || as_uint(args[5], "temporal", ALL_TEMPORAL_LAYERS, &temporal) < 0
        || (gso = PyObject_IsTrue(args[6])) < 0)
        return NULL;
    leg_count = PySequence_Fast_GET_SIZE(args[0]);
    legs = PySequence_Fast_ITEMS(args[0]);
    for (i = 0; i < leg_count; i++)
        if (!PyObject_TypeCheck(legs[i], &LegType)) {
            PyErr_Format(PyExc_TypeError, "legs[%zd] is not a Leg", i);
            return NULL;
        }
    for (i = 0; i < payloads.count && picture_id != NO_PICTURE_ID; i++)
        if (PyBytes_GET_SIZE(payloads.items[i]) < 3)
            rewritable = 0; /* sfu.vp8.with_picture_id would fail: leave it to Python */

    for (i = 0; i < leg_count; i++) {
        Leg *leg = (Leg *)legs[i];
        Stream *stream = (Stream *)leg->stream;
        int32_t next_id = NO_PICTURE_ID, sent_id = NO_PICTURE_ID;
        int status;

        /* Every 32nd frame the Python path checks that the transport is still up. */
        if (stream == NULL || stream->fd < 0 || stream->payload_type < 0
            || (route_check < 0 ? ((stream->frames + 1) & ROUTE_CHECK_MASK) == 0
                                : route_check)
            || stream->deferred_at == stream->frames) {
            if (stream != NULL)
                stream->deferred_at = stream->frames;
            if (report(&reported, i, DEFERRED) < 0)
                goto error;
            continue;
        }
        if (temporal == 0)
            leg->temporal_current = leg->temporal_target;
        else if (temporal > leg->temporal_current) {
            leg->frames_thinned++;
            continue;
        }
        if (picture_id != NO_PICTURE_ID) {
            /* DirectOutput.push: consecutive picture ids whatever was skipped. */
            next_id = stream->next_picture_id;
            if (next_id == NO_PICTURE_ID)
                next_id = (int32_t)picture_id;
            else if (next_id != picture_id) {
                if (!rewritable) {
                    stream->deferred_at = stream->frames;
                    if (report(&reported, i, DEFERRED) < 0)
                        goto error;
                    continue;
                }
                sent_id = next_id;
            }
        }
        stream->frames++;
        status = stream_send(stream, &payloads, sequence, pts, keyframe, sent_id, gso);
        if (status == GSO_RETRIED)
            gso = 0;
        if (next_id != NO_PICTURE_ID)
            stream->next_picture_id = (next_id + 1) & PICTURE_ID_MASK;
        leg->frames_forwarded++;
        if (status != SENT && report(&reported, i, status) < 0)
            goto error;
    }
    if (reported == NULL)
        Py_RETURN_NONE;
    return reported;
error:
    Py_XDECREF(reported);
    return NULL;
}
