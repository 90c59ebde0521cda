/* sfu._fanout: the native send path (typed fronts: sfu/native_send.py, sfu/fanout.py).
 *
 * module.c  the module, sockaddr() and send_frame() (one frame, arguments given)
 * wire.c    RTP packets: headers, VP8 picture ids, SRTP protect, sendmsg with UDP GSO
 * stream.c  Stream: one outgoing RTP stream's numbering, NACK history, header, route
 *           and counters, the single state both send paths use
 * leg.c     Leg (one consumer's temporal thinning and frame counters) and fanout():
 *           one frame to every steady-state consumer of a producer in one call
 *
 * The GIL is held in every call and nothing here runs Python code between the first
 * packet built and the last one sent, so the static packet slots (wire.c) are never
 * used by two calls at once. */
#ifndef SFU_FANOUT_H
#define SFU_FANOUT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "../_native_args.h"

#include <stdint.h>
#include <sys/socket.h>

#define RTP_HEADER_LEN 12
#define SRTP_MAX_TRAILER_LEN 144 /* libsrtp2: SRTP_MAX_TAG_LEN + SRTP_MAX_MKI_LEN */
#define SLOT_LEN 2048
#define EXTENSION_MAX 64 /* what header_extensions() makes: MID (<= 16) and abs-send-time */
#define HISTORY_SIZE 128 /* sfu.rtp_rewriter.HISTORY_SIZE */
#define NO_PICTURE_ID (-1)

/* What sending one frame to one stream came to (fanout() reports all but SENT). */
#define SENT 0           /* sent, or dropped because the socket buffer was full */
#define GSO_RETRIED (-1) /* the kernel cannot segment: sent again one packet per call */
#define DEFERRED (-2)    /* not handled here: the caller sends it on the Python path */
/* > 0: an errno; the route is broken (EMSGSIZE: a packet too long, EPROTO: protect) */

typedef int (*protect_fn)(void *session, void *packet, int *len);

/* The packets to send: borrowed references into a tuple or list of bytes. */
typedef struct {
    PyObject *const *items;
    Py_ssize_t count;
    Py_ssize_t longest;
} Payloads;

typedef struct {
    PyObject *payloads; /* the frame's payloads (owned), NULL: empty slot */
    uint16_t first;     /* the frame's first sequence number */
    uint32_t timestamp;
    int32_t picture_id; /* sent with this VP8 picture id, NO_PICTURE_ID: as they are */
} HistorySlot;

typedef struct {
    PyObject_HEAD
    /* numbering: sfu.rtp_rewriter.PtsRebaser and RtpRewriter */
    long long step, offset, last, gap;
    int has_last, switching, has_keyframe_start;
    uint16_t sequence_number, rtx_sequence_number, keyframe_start;
    uint32_t origin;
    HistorySlot history[HISTORY_SIZE];
    /* header */
    uint32_t ssrc;
    int payload_type; /* -1: not bound yet */
    unsigned char first_byte;
    unsigned char extension[EXTENSION_MAX];
    Py_ssize_t extension_len;
    int send_time_at; /* offset of abs-send-time in extension, -1: none */
    /* route: the socket's descriptor and address, libsrtp's session */
    PyObject *route; /* kept alive while set (it owns the socket and the session) */
    int fd;
    struct sockaddr_storage to;
    socklen_t to_len;
    protect_fn protect;
    void *session;
    /* counters and the sender report's reference */
    long long packets_sent, octets, frames;
    int has_sr;
    double sr_wall;
    uint32_t sr_rtp;
    int32_t next_picture_id; /* DirectOutput's: NO_PICTURE_ID until the first VP8 frame */
    /* `frames` when the fan-out last left a frame to Python (-1: never): until Python
     * has sent it (and counted it), later frames are left to Python too, in order. */
    long long deferred_at;
} Stream;

typedef struct {
    PyObject_HEAD
    PyObject *stream; /* a Stream, or NULL */
    int temporal_target, temporal_current;
    long long frames_forwarded, frames_thinned;
} Leg;

extern PyTypeObject StreamType;
extern PyTypeObject LegType;

/* module.c */
int as_uint(PyObject *obj, const char *name, long long max, long long *out);
int as_sockaddr(PyObject *obj, struct sockaddr_storage *to, socklen_t *to_len);

/* wire.c */
int payloads_from(PyObject *sequence, Payloads *out);
double seconds_of(int clock_id);
void stamp_abs_send_time(unsigned char *at);
PyObject *with_picture_id(PyObject *payload, int32_t picture_id);
int send_packets(int fd, const struct sockaddr *to, socklen_t to_len, protect_fn protect,
                 void *session, unsigned char first_byte, int payload_type,
                 uint16_t sequence_number, uint32_t timestamp, uint32_t ssrc,
                 const unsigned char *extension, Py_ssize_t extension_len,
                 const Payloads *payloads, int32_t picture_id, int marker_on_last, int gso,
                 long long *octets, int *protect_status);

/* stream.c */
int stream_send(Stream *self, const Payloads *payloads, PyObject *sequence, long long pts,
                int keyframe, int32_t picture_id, int gso);

#endif
