/* What a publish connection may send: each track's caps (bits and packets per second,
 * token buckets one second deep; an RTX stream is charged to its media stream), SSRCs
 * Python refused (dropped here for REFUSED_SECONDS without asking again), and budgets
 * for what only Python can handle (RTP of an SSRC not added, RTCP, STUN/DTLS), so that a
 * flood costs this loop a few nanoseconds a packet instead of a Python call. Every
 * refused packet is counted per connection and per process. */
#include "receive.h"

#define CAP_SECONDS 1.0       /* depth of a track's buckets: a keyframe's burst fits */
#define REFUSED_SECONDS 1.0   /* a refused SSRC comes back to Python after this */
#define UNKNOWN_PER_SECOND 32 /* RTP of SSRCs not added yet: new tracks, RTX, codecs */
#define UNKNOWN_BURST 64
#define RTCP_PER_SECOND 200 /* a publisher's sender reports: one a second per stream */
#define RTCP_BURST 400
#define CONTROL_PER_SECOND 50 /* ICE consent checks, DTLS: a few a second */
#define CONTROL_BURST 100

static const char *const REASONS[REFUSED_REASONS] = {
    "track_cap",     "unknown_ssrc", "unnegotiated_mid",      "unknown_codec",
    "unknown_flood", "rtcp_flood",   "control_flood",         "subscriber_rtcp_flood",
    "subscriber_control_flood",
};

/* Process-wide totals (the GIL serializes every receiver). */
static unsigned long long totals[REFUSED_REASONS];

void
bucket_set(Bucket *b, double rate, double burst, double now)
{
    b->rate = rate;
    b->burst = burst;
    b->tokens = burst;
    b->last = now;
}

static void
bucket_refill(Bucket *b, double now)
{
    double elapsed = now - b->last;

    if (elapsed > 0) {
        b->tokens += elapsed * b->rate;
        if (b->tokens > b->burst)
            b->tokens = b->burst;
    }
    b->last = now;
}

int
bucket_take(Bucket *b, double amount, double now)
{
    if (b->rate <= 0)
        return 1;
    bucket_refill(b, now);
    if (b->tokens < amount)
        return 0;
    b->tokens -= amount;
    return 1;
}

void
guard_count(int reason)
{
    totals[reason]++;
}

static void
refuse(Receiver *self, int reason)
{
    self->guard.refused[reason]++;
    totals[reason]++;
}

void
guard_init(Guard *g)
{
    double now = monotonic();

    memset(g, 0, sizeof(*g));
    bucket_set(&g->unknown, UNKNOWN_PER_SECOND, UNKNOWN_BURST, now);
    bucket_set(&g->rtcp, RTCP_PER_SECOND, RTCP_BURST, now);
    bucket_set(&g->control, CONTROL_PER_SECOND, CONTROL_BURST, now);
}

void
guard_cap_stream(Receiver *self, Stream *s)
{
    const double *caps = self->guard.caps + (s->kind == KIND_AUDIO ? 0 : 2);
    double now = monotonic();

    bucket_set(&s->cap_bits, caps[0], caps[0] * CAP_SECONDS, now);
    bucket_set(&s->cap_packets, caps[1], caps[1] * CAP_SECONDS, now);
}

/* 1: the packet (`length` bytes of RTP) is within its track's caps; 0: refused. */
int
guard_admit_rtp(Receiver *self, Stream *s, Py_ssize_t length)
{
    Stream *track = s->kind == KIND_RTX ? s->media : s;
    double now, bits;

    if (track == NULL || (track->cap_bits.rate <= 0 && track->cap_packets.rate <= 0))
        return 1;
    now = monotonic();
    bits = 8.0 * (double)length;
    /* Both are checked before either is charged: a refused packet costs no tokens. */
    if (track->cap_bits.rate > 0)
        bucket_refill(&track->cap_bits, now);
    if (track->cap_packets.rate > 0)
        bucket_refill(&track->cap_packets, now);
    if ((track->cap_bits.rate > 0 && track->cap_bits.tokens < bits) ||
        (track->cap_packets.rate > 0 && track->cap_packets.tokens < 1)) {
        track->over_cap++;
        refuse(self, REFUSED_TRACK_CAP);
        return 0;
    }
    if (track->cap_bits.rate > 0)
        track->cap_bits.tokens -= bits;
    if (track->cap_packets.rate > 0)
        track->cap_packets.tokens -= 1;
    return 1;
}

/* 1: RTP of an SSRC not added goes to Python; 0: refused (remembered, or over budget). */
int
guard_admit_unknown(Receiver *self, uint32_t ssrc)
{
    Guard *g = &self->guard;
    double now = monotonic();
    int i;

    for (i = 0; i < REFUSED_SSRCS; i++) {
        if (g->ssrcs[i].ssrc == ssrc && g->ssrcs[i].until > now) {
            refuse(self, g->ssrcs[i].reason);
            return 0;
        }
    }
    if (!bucket_take(&g->unknown, 1, now)) {
        refuse(self, REFUSED_UNKNOWN_FLOOD);
        return 0;
    }
    return 1;
}

/* 1: an RTCP (`rtcp`) or STUN/DTLS datagram goes to Python; 0: over budget. */
int
guard_admit_control(Receiver *self, int rtcp)
{
    Guard *g = &self->guard;

    if (bucket_take(rtcp ? &g->rtcp : &g->control, 1, monotonic()))
        return 1;
    refuse(self, rtcp ? REFUSED_RTCP_FLOOD : REFUSED_CONTROL_FLOOD);
    return 0;
}

/* Receiver.cap(audio_bitrate, audio_packet_rate, video_bitrate, video_packet_rate): the
 * caps of every stream, those added already included (0: none). */
PyObject *
Receiver_cap(Receiver *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"audio_bitrate", "audio_packet_rate", "video_bitrate",
                               "video_packet_rate", NULL};
    double caps[4];
    Py_ssize_t i;

    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "dddd", keywords, &caps[0], &caps[1],
                                     &caps[2], &caps[3]))
        return NULL;
    for (i = 0; i < 4; i++) {
        if (!(caps[i] >= 0) || caps[i] > 1e12) {
            PyErr_SetString(PyExc_ValueError, "caps must be between 0 (none) and 1e12");
            return NULL;
        }
    }
    memcpy(self->guard.caps, caps, sizeof(caps));
    for (i = 0; i < self->count; i++) {
        if (self->streams[i]->kind != KIND_RTX)
            guard_cap_stream(self, self->streams[i]);
    }
    Py_RETURN_NONE;
}

/* Receiver.refuse(ssrc, reason): Python found no negotiated track for this packet; it is
 * counted under `reason` (a name of `refused`), and the SSRC's next packets are dropped
 * here, counted the same, for REFUSED_SECONDS. */
PyObject *
Receiver_refuse(Receiver *self, PyObject *args)
{
    PyObject *ssrc_object;
    const char *name;
    uint32_t ssrc;
    int reason, i;
    Guard *g = &self->guard;

    if (!PyArg_ParseTuple(args, "Os", &ssrc_object, &name) || !as_uint32(ssrc_object, &ssrc))
        return NULL;
    for (reason = 0; reason < REFUSED_REASONS; reason++) {
        if (strcmp(name, REASONS[reason]) == 0)
            break;
    }
    if (reason != REFUSED_UNKNOWN_SSRC && reason != REFUSED_UNNEGOTIATED_MID &&
        reason != REFUSED_UNKNOWN_CODEC) {
        PyErr_Format(PyExc_ValueError, "not a reason to refuse an SSRC: %s", name);
        return NULL;
    }
    refuse(self, reason);
    for (i = 0; i < REFUSED_SSRCS; i++) {
        if (g->ssrcs[i].ssrc == ssrc && g->ssrcs[i].until > 0)
            break;
    }
    if (i == REFUSED_SSRCS) {
        i = g->next_ssrc;
        g->next_ssrc = (g->next_ssrc + 1) % REFUSED_SSRCS;
    }
    g->ssrcs[i].ssrc = ssrc;
    g->ssrcs[i].reason = reason;
    g->ssrcs[i].until = monotonic() + REFUSED_SECONDS;
    Py_RETURN_NONE;
}

static PyObject *
as_dict(const unsigned long long *counts)
{
    PyObject *dict = PyDict_New();
    int i;

    if (dict == NULL)
        return NULL;
    for (i = 0; i < REFUSED_REASONS; i++) {
        PyObject *value = PyLong_FromUnsignedLongLong(counts[i]);
        if (value == NULL || PyDict_SetItemString(dict, REASONS[i], value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(dict);
            return NULL;
        }
        Py_DECREF(value);
    }
    return dict;
}

PyObject *
Receiver_get_refused(Receiver *self, void *Py_UNUSED(closure))
{
    return as_dict(self->guard.refused);
}

/* refused_totals(): what every receiver of the process refused, per reason. */
PyObject *
guard_refused_totals(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(unused))
{
    return as_dict(totals);
}
