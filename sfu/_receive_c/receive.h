/* Shared by the native receive path's sources (module.c, streams.c, codecs.c): the
 * streams, the receiver object and the helpers each part offers the others. */
#ifndef SFU_RECEIVE_H
#define SFU_RECEIVE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../_native_args.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define BATCH 64
#define MAX_PER_DRAIN 256
#define SLOT_LEN 2048
#define RING 512 /* packets held per video stream; a power of two dividing 65536 */
#define NACK_HISTORY 128 /* aiortc's RTP_HISTORY_SIZE: missing packets kept in [max - 128, max) */
#define MISSING_RING 256
#define DIGITAL_SILENCE 127
#define ROUTE_CHECK_MASK 31 /* sfu.direct_send.ROUTE_CHECK_MASK */

enum { KIND_AUDIO = 0, KIND_VP8 = 1, KIND_H264 = 2, KIND_RTX = 3 };
enum {
    EV_FRAME = 0,   /* (0, token, payloads, pts, keyframe, temporal, layer_sync) */
    EV_LEVEL = 1,   /* (1, token, level, voice) */
    EV_SILENCE = 2, /* (2, token) */
    EV_LOSS = 3,    /* (3, token) */
    EV_NACK = 4,    /* (4, token, media_ssrc, [sequence numbers]) */
    EV_OTHER = 5,   /* (5, datagram, address): not SRTP (STUN, DTLS) */
    EV_RTCP = 6,    /* (6, datagram): SRTCP, still protected */
    EV_UNKNOWN = 7, /* (7, rtp): unprotected RTP of an SSRC not added */
    EV_REPORT = 8,  /* (8, token, report, legs, payloads, pts, keyframe, temporal,
                       layer_sync): a frame handed off directly whose fan-out
                       reported something for Python to do */
};

#define TEMPORAL_LAYERS 4 /* what the VP8 descriptor's 2-bit TID can name */

/* What the direct hand-off did for one stream since Python last took it. */
typedef struct {
    uint64_t frames, keyframes, bytes, silent;
    uint64_t temporal_frames[TEMPORAL_LAYERS], temporal_bytes[TEMPORAL_LAYERS];
    double last_frame, last_silent; /* monotonic; 0: none */
    int level_min, levels, voice;
} Tally;

typedef int (*unprotect_fn)(void *session, void *packet, int *len);

/* A token bucket: `rate` per second up to `burst` (rate <= 0: unlimited). */
typedef struct {
    double rate, burst, tokens, last;
} Bucket;

/* Why a packet was refused (guard.c): the names `Receiver.refused` reports. */
enum {
    REFUSED_TRACK_CAP = 0,        /* a track above its bit rate or packet rate cap */
    REFUSED_UNKNOWN_SSRC = 1,     /* RTP of an SSRC no negotiated track has */
    REFUSED_UNNEGOTIATED_MID = 2, /* RTP naming a mid the answer did not accept */
    REFUSED_UNKNOWN_CODEC = 3,    /* RTP of a payload type that was not negotiated */
    REFUSED_UNKNOWN_FLOOD = 4,    /* unknown RTP beyond the connection's budget */
    REFUSED_RTCP_FLOOD = 5,       /* RTCP beyond the connection's budget */
    REFUSED_CONTROL_FLOOD = 6,    /* STUN/DTLS beyond the connection's budget */
    REFUSED_SUBSCRIBER_RTCP_FLOOD = 7,    /* a subscribe connection's, beyond its budget */
    REFUSED_SUBSCRIBER_CONTROL_FLOOD = 8, /* STUN/DTLS/media on a subscribe connection */
    REFUSED_REASONS = 9,
};
#define REFUSED_SSRCS 16 /* SSRCs remembered as refused, each for REFUSED_SECONDS */

typedef struct {
    uint32_t ssrc;
    int reason;
    double until; /* monotonic; 0: free */
} RefusedSsrc;

/* What one publish connection may send, and what it sent that was refused. */
typedef struct {
    Bucket unknown, rtcp, control;
    RefusedSsrc ssrcs[REFUSED_SSRCS];
    int next_ssrc;
    /* caps of each new stream: audio bits/s, audio packets/s, video bits/s, video
     * packets/s (0: none) */
    double caps[4];
    unsigned long long refused[REFUSED_REASONS];
} Guard;

typedef struct {
    PyObject *payload; /* NULL: empty slot */
    uint16_t seq;
    uint32_t timestamp;
    uint8_t marker;
} Slot;

typedef struct Stream {
    uint32_t ssrc;
    int kind;
    uint8_t payload_type;
    uint32_t clock_rate;
    struct Stream *media; /* for KIND_RTX: the stream it retransmits */
    PyObject *token;
    /* receive statistics (aiortc's StreamStatistics) */
    int stats_started;
    uint16_t base_seq, max_seq;
    uint64_t cycles, received;
    int64_t jitter_q4;
    int have_last;
    int64_t last_arrival;
    int64_t last_timestamp;
    /* NACK bookkeeping (aiortc's NackGenerator): missing[seq % MISSING_RING] holds
     * seq + 1 while seq is missing */
    int nack_started;
    uint16_t nack_max;
    uint32_t missing[MISSING_RING];
    uint64_t nacked;
    int nack_owed; /* a loss seen on a packet over the cap: NACKed with the next one */
    /* RTP timestamps unwrapped to a count from the first frame */
    int ts_started;
    uint32_t ts_last;
    int64_t ts_extended;
    /* video assembly (VideoFrameAssembler) */
    Slot *ring;
    int head_valid, hole_valid;
    uint16_t head, hole;
    double blocked_since; /* < 0: not blocked */
    int held;
    /* audio (AudioFramePassthrough) */
    int audio_last_valid;
    uint16_t audio_last;
    /* counters */
    uint64_t packets, frames, keyframes, late_packets, skipped, silent_frames, dropped;
    /* the track's caps (guard.c; an RTX stream is charged to its media stream's) */
    Bucket cap_bits, cap_packets;
    uint64_t over_cap;
    /* The direct hand-off (NULL: off): audio frames and video frames that are not
     * keyframes go to direct_fn(direct_legs, payloads, pts, keyframe, picture_id,
     * temporal, direct_gso, route_check), the C fan-out, instead of an EV_FRAME (no legs:
     * only tallied, nobody wants them); levels and silence are tallied instead of
     * emitted. */
    PyObject *direct_fn, *direct_legs, *direct_gso;
    int awaiting_keyframe; /* frames were lost: none handed off until a keyframe */
    uint64_t keyframe_call; /* the call (Receiver.calls) that gave Python a keyframe */
    Tally tally;
} Stream;

typedef struct {
    PyObject_HEAD
    unprotect_fn unprotect;
    void *session;
    PyObject *keep; /* what keeps the session alive */
    int audio_level_id;
    double max_wait;
    Stream **streams;
    Py_ssize_t count, capacity;
    Stream *last; /* the stream of the previous packet */
    PyObject *events; /* the list being filled by the current call */
    uint64_t calls; /* drain/feed calls so far */
    unsigned long long datagrams, unprotect_errors, malformed;
    Guard guard;
} Receiver;

static inline double
monotonic(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

static inline double
wall_clock(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

static inline int
uint16_gt(uint16_t a, uint16_t b)
{
    uint16_t half = 0x8000;
    return (a > b && a - b < half) || (a < b && b - a > half);
}

/* "O&" converter of an int in [0, 2**32) (an SSRC, a clock rate) to a uint32_t:
 * ValueError out of range ("k" would take any int modulo 2**64, then truncate). */
static inline int
as_uint32(PyObject *obj, void *out)
{
    unsigned long long value;

    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "expected an int, not %.200s", Py_TYPE(obj)->tp_name);
        return 0;
    }
    value = PyLong_AsUnsignedLongLong(obj);
    if (value == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return 0;
        PyErr_Clear();
        value = 0x100000000ULL; /* negative or above 2**64 */
    }
    if (value > 0xFFFFFFFFULL) {
        PyErr_SetString(PyExc_ValueError, "SSRC or clock rate out of range (0 to 2**32 - 1)");
        return 0;
    }
    *(uint32_t *)out = (uint32_t)value;
    return 1;
}

/* A fan-out called from a hand-off may run Python code: it must not remove or re-route
 * the stream whose frame it is handling (the caller still uses it afterwards). */
static inline int
refuse_reentry(Receiver *self)
{
    if (self->events == NULL)
        return 0;
    PyErr_SetString(PyExc_RuntimeError, "Receiver changed while it handles datagrams");
    return -1;
}

/* codecs.c */
int is_frame_start(const Stream *s, PyObject *payload);
void vp8_temporal_layer(PyObject *payload, int *tid, int *sync);
long vp8_picture_id(PyObject *payload);
int vp8_frame_is_keyframe(Stream *s, uint16_t head, int count);
int h264_frame_is_keyframe(Stream *s, uint16_t head, int count);

/* streams.c */
int emit(Receiver *self, PyObject *event);
Stream *find_stream(Receiver *self, uint32_t ssrc);
void clear_ring(Stream *s);
void free_stream(Stream *s);
void add_statistics(Stream *s, uint16_t seq, uint32_t timestamp, double now);
int nack_add(Stream *s, uint16_t seq);
PyObject *missing_list(Stream *s);
int video_push(Receiver *self, Stream *s, uint16_t seq, uint32_t timestamp, int marker,
               PyObject *payload);
int audio_push(Receiver *self, Stream *s, uint16_t seq, uint32_t timestamp, int level,
               int voice, PyObject *payload);

/* module.c: the datagrams of one recvmmsg (the GIL is held for a whole call and
 * nothing in it runs Python code that could re-enter, so no two calls use them at
 * once), and argument helpers */
extern unsigned char buffers[BATCH][SLOT_LEN];
extern struct mmsghdr messages[BATCH];
extern struct iovec vectors[BATCH];
extern struct sockaddr_storage addresses[BATCH];
int receive_batch(int fd);

/* direct.c */
void reset_tally(Stream *s);
int hand_off(Receiver *self, Stream *s, PyObject *payloads, int64_t pts, int keyframe, int tid,
             int sync);
PyObject *Receiver_direct(Receiver *self, PyObject *args, PyObject *kwargs);
PyObject *Receiver_take(Receiver *self, PyObject *arg);

/* control.c */
extern PyTypeObject ControlReaderType;

/* counting.c */
extern PyTypeObject HeaderCountType, HeaderCounterType;

/* guard.c */
PyObject *Receiver_cap(Receiver *self, PyObject *args, PyObject *kwargs);
PyObject *Receiver_refuse(Receiver *self, PyObject *args);
PyObject *Receiver_get_refused(Receiver *self, void *closure);
void guard_init(Guard *g);
void bucket_set(Bucket *b, double rate, double burst, double now);
int bucket_take(Bucket *b, double amount, double now);
void guard_count(int reason); /* one refused packet in the process totals */
void guard_cap_stream(Receiver *self, Stream *s);
int guard_admit_rtp(Receiver *self, Stream *s, Py_ssize_t length);
int guard_admit_unknown(Receiver *self, uint32_t ssrc);
int guard_admit_control(Receiver *self, int rtcp);
PyObject *guard_refused_totals(PyObject *module, PyObject *unused);

/* packets.c */
int handle_rtp(Receiver *self, const unsigned char *p, Py_ssize_t n, double now);
int is_rtcp(const unsigned char *p, Py_ssize_t n);
PyObject *address_of(const struct sockaddr_storage *address);
int handle_datagram(Receiver *self, unsigned char *p, int n, PyObject *address, double now);

#endif
