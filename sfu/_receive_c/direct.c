/* The direct hand-off of a stream's frames to the C fan-out (see Stream.direct_fn):
 * the call per frame, what it tallies for Python, and the Receiver methods that set
 * it and take the tally. */
#include "receive.h"

void
reset_tally(Stream *s)
{
    memset(&s->tally, 0, sizeof(Tally));
    s->tally.level_min = DIGITAL_SILENCE;
}

static void
tally_frame(Stream *s, PyObject *payloads, int keyframe, int tid)
{
    Tally *t = &s->tally;
    Py_ssize_t i, size = 0;

    for (i = 0; i < PyTuple_GET_SIZE(payloads); i++)
        size += PyBytes_GET_SIZE(PyTuple_GET_ITEM(payloads, i));
    t->frames += 1;
    t->bytes += (uint64_t)size;
    if (keyframe)
        t->keyframes += 1;
    t->temporal_frames[tid & (TEMPORAL_LAYERS - 1)] += 1;
    t->temporal_bytes[tid & (TEMPORAL_LAYERS - 1)] += (uint64_t)size;
    t->last_frame = monotonic();
}

/* Hands a frame to the C fan-out when the stream has a direct hand-off and the frame
 * may take it (audio, or video that is not a keyframe: Python sees every keyframe).
 * 1: handed off (an EV_REPORT queued when the fan-out reported something); 0: not
 * taken, emit an EV_FRAME; -1: error. */
int
hand_off(Receiver *self, Stream *s, PyObject *payloads, int64_t pts, int keyframe, int tid,
         int sync)
{
    PyObject *args[8], *report, *pts_obj, *tid_obj, *picture_id = Py_None;

    if (s->direct_fn == NULL)
        return 0;
    if (keyframe && s->kind != KIND_AUDIO) {
        s->awaiting_keyframe = 0;
        s->keyframe_call = self->calls;
        return 0;
    }
    /* After a loss the frames up to the next keyframe cannot be decoded: they go to
     * Python, which withholds them (its LOSS event may still be in this batch). And a
     * keyframe may make a subscriber switch to this stream when Python handles it: the
     * frames after it in the same call go to Python too. */
    if (s->awaiting_keyframe || (s->keyframe_call != 0 && s->keyframe_call == self->calls))
        return 0;
    if (PyTuple_GET_SIZE(s->direct_legs) == 0) {
        tally_frame(s, payloads, keyframe, tid);
        return 1;
    }
    if (s->kind == KIND_VP8) {
        long id = vp8_picture_id(PyTuple_GET_ITEM(payloads, 0));
        if (id >= 0 && (picture_id = PyLong_FromLong(id)) == NULL)
            return -1;
    }
    pts_obj = PyLong_FromLongLong((long long)pts);
    tid_obj = PyLong_FromLong(tid);
    if (pts_obj == NULL || tid_obj == NULL) {
        Py_XDECREF(pts_obj);
        Py_XDECREF(tid_obj);
        if (picture_id != Py_None)
            Py_DECREF(picture_id);
        return -1;
    }
    args[0] = s->direct_legs;
    args[1] = payloads;
    args[2] = pts_obj;
    args[3] = keyframe ? Py_True : Py_False;
    args[4] = picture_id;
    args[5] = tid_obj;
    args[6] = s->direct_gso;
    /* Every member's route check on one frame in 32, as sfu.fanout does. */
    args[7] = (s->frames & ROUTE_CHECK_MASK) == 0 ? Py_True : Py_False;
    /* direct() may replace the hand-off from Python code the call runs: keep these. */
    Py_INCREF(s->direct_legs);
    report = PyObject_Vectorcall(s->direct_fn, args, 8, NULL);
    if (picture_id != Py_None)
        Py_DECREF(picture_id);
    if (report == NULL) {
        Py_DECREF(args[0]);
        Py_DECREF(pts_obj);
        Py_DECREF(tid_obj);
        return -1;
    }
    tally_frame(s, payloads, keyframe, tid);
    if (report != Py_None) {
        PyObject *event = Py_BuildValue("(iOOOOOOOO)", EV_REPORT, s->token, report, args[0],
                                        payloads, pts_obj, keyframe ? Py_True : Py_False,
                                        tid_obj, sync ? Py_True : Py_False);
        Py_DECREF(report);
        Py_DECREF(args[0]);
        Py_DECREF(pts_obj);
        Py_DECREF(tid_obj);
        return emit(self, event) < 0 ? -1 : 1;
    }
    Py_DECREF(report);
    Py_DECREF(args[0]);
    Py_DECREF(pts_obj);
    Py_DECREF(tid_obj);
    return 1;
}

PyObject *
Receiver_direct(Receiver *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"ssrc", "fanout", "legs", "gso", NULL};
    uint32_t ssrc;
    PyObject *fn, *legs = Py_None, *gso = Py_False;
    Stream *s;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O&O|OO", keywords, as_uint32, &ssrc, &fn,
                                     &legs, &gso))
        return NULL;
    if (refuse_reentry(self) < 0)
        return NULL;
    s = find_stream(self, ssrc);
    if (s == NULL || s->kind == KIND_RTX) {
        PyErr_Format(PyExc_ValueError, "no media stream of SSRC %lu", (unsigned long)ssrc);
        return NULL;
    }
    if (fn == Py_None) {
        Py_CLEAR(s->direct_fn);
        Py_CLEAR(s->direct_legs);
        Py_CLEAR(s->direct_gso);
        Py_RETURN_NONE;
    }
    if (!PyCallable_Check(fn) || !PyTuple_Check(legs)) {
        PyErr_SetString(PyExc_TypeError, "direct: fanout must be callable and legs a tuple");
        return NULL;
    }
    Py_INCREF(fn);
    Py_INCREF(legs);
    Py_INCREF(gso);
    Py_XSETREF(s->direct_fn, fn);
    Py_XSETREF(s->direct_legs, legs);
    Py_XSETREF(s->direct_gso, gso);
    Py_RETURN_NONE;
}

PyObject *
Receiver_take(Receiver *self, PyObject *arg)
{
    uint32_t ssrc;
    Stream *s;
    Tally *t;
    PyObject *result;

    if (!as_uint32(arg, &ssrc))
        return NULL;
    s = find_stream(self, ssrc);
    if (s == NULL)
        Py_RETURN_NONE;
    t = &s->tally;
    if (t->frames == 0 && t->levels == 0 && t->silent == 0)
        Py_RETURN_NONE;
    result = Py_BuildValue(
        "(KKK(KKKK)(KKKK)diOKd)", (unsigned long long)t->frames,
        (unsigned long long)t->keyframes, (unsigned long long)t->bytes,
        (unsigned long long)t->temporal_frames[0], (unsigned long long)t->temporal_frames[1],
        (unsigned long long)t->temporal_frames[2], (unsigned long long)t->temporal_frames[3],
        (unsigned long long)t->temporal_bytes[0], (unsigned long long)t->temporal_bytes[1],
        (unsigned long long)t->temporal_bytes[2], (unsigned long long)t->temporal_bytes[3],
        t->last_frame, t->levels ? t->level_min : -1, t->voice ? Py_True : Py_False,
        (unsigned long long)t->silent, t->last_silent);
    if (result != NULL)
        reset_tally(s);
    return result;
}
