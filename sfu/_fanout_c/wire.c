/* RTP packets on the wire: header, header extension, payload (its VP8 picture id
 * rewritten where asked), SRTP protect in place, and one sendmsg with UDP GSO per frame
 * when the packet sizes allow it. Byte for byte what DirectRtpSender's Python path
 * sends (sfu/direct_send.py, sfu/vp8.py). */
#include "fanout.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103 /* linux/udp.h; older libc headers lack it */
#endif

#define BATCH 64 /* the kernel's UDP_MAX_SEGMENTS */
#define GSO_MAX_BYTES 60000

/* Aligned because libsrtp reads the header's words in place. */
static _Alignas(16) unsigned char slots[BATCH][SLOT_LEN];
static struct iovec iov[BATCH];

int
payloads_from(PyObject *sequence, Payloads *out)
{
    Py_ssize_t i;

    if (!PyList_Check(sequence) && !PyTuple_Check(sequence)) {
        PyErr_SetString(PyExc_TypeError, "payloads must be a list or a tuple");
        return -1;
    }
    out->count = PySequence_Fast_GET_SIZE(sequence);
    out->items = PySequence_Fast_ITEMS(sequence);
    out->longest = 0;
    for (i = 0; i < out->count; i++) {
        if (!PyBytes_Check(out->items[i])) {
            PyErr_Format(PyExc_TypeError, "payloads[%zd] is not bytes", i);
            return -1;
        }
        if (PyBytes_GET_SIZE(out->items[i]) > out->longest)
            out->longest = PyBytes_GET_SIZE(out->items[i]);
    }
    return 0;
}

/* The clock in seconds as Python's time.time() (CLOCK_REALTIME) and time.perf_counter()
 * (CLOCK_MONOTONIC) return it: nanoseconds, then _PyTime_AsSecondsDouble's rounding. */
double
seconds_of(int clock_id)
{
    struct timespec now;
    long long ns;

    clock_gettime(clock_id, &now);
    ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
    if (ns % 1000000000LL == 0)
        return (double)(ns / 1000000000LL);
    return (double)ns / 1e9;
}

/* direct_send.abs_send_time(time.perf_counter()): 6.18 fixed point, 24 bits. */
void
stamp_abs_send_time(unsigned char *at)
{
    uint32_t value = (uint32_t)((long long)(seconds_of(CLOCK_MONOTONIC) * 262144.0) & 0xFFFFFF);

    at[0] = value >> 16;
    at[1] = value >> 8;
    at[2] = value;
}

/* sfu.vp8.with_picture_id: the first two bytes, the id in 15 bits, the rest after the
 * old id (one byte or two). The payload is at least 3 bytes long. */
static Py_ssize_t
write_picture_id(unsigned char *to, const unsigned char *payload, Py_ssize_t len, int32_t id)
{
    Py_ssize_t rest = payload[2] & 0x80 ? 4 : 3;

    if (rest > len)
        rest = len;
    to[0] = payload[0];
    to[1] = payload[1];
    to[2] = 0x80 | ((id & 0x7FFF) >> 8);
    to[3] = id & 0xFF;
    memcpy(to + 4, payload + rest, len - rest);
    return 4 + len - rest;
}

static Py_ssize_t
rewritten_len(PyObject *payload, int32_t id)
{
    Py_ssize_t len = PyBytes_GET_SIZE(payload), rest;

    if (id == NO_PICTURE_ID)
        return len;
    rest = PyBytes_AS_STRING(payload)[2] & 0x80 ? 4 : 3;
    return 4 + len - (rest > len ? len : rest);
}

PyObject *
with_picture_id(PyObject *payload, int32_t id)
{
    Py_ssize_t len = PyBytes_GET_SIZE(payload);
    PyObject *out = PyBytes_FromStringAndSize(NULL, rewritten_len(payload, id));

    if (out != NULL)
        write_picture_id((unsigned char *)PyBytes_AS_STRING(out),
                         (const unsigned char *)PyBytes_AS_STRING(payload), len, id);
    return out;
}

static int
send_one(int fd, const void *packet, size_t len, const struct sockaddr *to, socklen_t to_len)
{
    ssize_t sent;

    /* A non-blocking send is never interrupted in practice; retry like Python (PEP 475)
     * without running signal handlers, which could re-enter and reuse the slots. */
    do
        sent = sendto(fd, packet, len, 0, to, to_len);
    while (sent < 0 && errno == EINTR);
    return sent < 0 ? errno : 0;
}

/* Send iov[0:count]: one sendmsg the kernel splits every gso_size bytes when gso_size is
 * set and the sizes fit that (a last packet longer than gso_size would be split in
 * two), else one sendto per packet. Returns 0 or an errno. */
static int
send_batch(int fd, const struct sockaddr *to, socklen_t to_len, int count, uint16_t gso_size)
{
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {
        .msg_name = (void *)to,
        .msg_namelen = to_len,
        .msg_iov = iov,
        .msg_iovlen = count,
        .msg_control = control.buf,
        .msg_controllen = sizeof control.buf,
    };
    struct cmsghdr *cmsg;
    ssize_t sent;
    int i, status, segmented = gso_size != 0 && count > 1;

    for (i = 0; segmented && i < count; i++)
        if (i < count - 1 ? iov[i].iov_len != gso_size : iov[i].iov_len > gso_size)
            segmented = 0;
    if (!segmented) {
        for (i = 0; i < count; i++)
            if ((status = send_one(fd, iov[i].iov_base, iov[i].iov_len, to, to_len)) != 0)
                return status;
        return 0;
    }
    memset(&control, 0, sizeof control);
    cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = IPPROTO_UDP;
    cmsg->cmsg_type = UDP_SEGMENT;
    cmsg->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(cmsg), &gso_size, sizeof gso_size);
    do
        sent = sendmsg(fd, &msg, 0);
    while (sent < 0 && errno == EINTR);
    return sent < 0 ? errno : 0;
}

static void
put32(unsigned char *p, uint32_t value)
{
    p[0] = value >> 24;
    p[1] = value >> 16;
    p[2] = value >> 8;
    p[3] = value;
}

/* Packet i: RTP header(first_byte, the marker on the last if marker_on_last,
 * payload_type, sequence_number + i, timestamp, ssrc) + extension + payload i (with
 * picture_id written in, unless NO_PICTURE_ID), protected and sent. Nothing is sent
 * unless every packet fits its slot (EMSGSIZE). *octets: the payload bytes (also then). Returns 0,
 * an errno of the send (EAGAIN included), or EPROTO with *protect_status set. */
int
send_packets(int fd, const struct sockaddr *to, socklen_t to_len, protect_fn protect,
             void *session, unsigned char first_byte, int payload_type,
             uint16_t sequence_number, uint32_t timestamp, uint32_t ssrc,
             const unsigned char *extension, Py_ssize_t extension_len,
             const Payloads *payloads, int32_t picture_id, int marker_on_last, int gso,
             long long *octets, int *protect_status)
{
    Py_ssize_t header_len = RTP_HEADER_LEN + extension_len, count = payloads->count;
    Py_ssize_t first_len = 0, total = 0, i;
    int uniform = gso && count > 1, per_call = BATCH, batch = 0, status, too_long = 0;
    uint16_t gso_size = 0;

    for (i = 0; i < count; i++) {
        Py_ssize_t len = rewritten_len(payloads->items[i], picture_id);
        if (header_len + len + SRTP_MAX_TRAILER_LEN > SLOT_LEN)
            too_long = 1;
        if (i == 0)
            first_len = len;
        else if (i < count - 1 ? len != first_len : len > first_len)
            uniform = 0;
        total += len;
    }
    *octets = total;
    if (too_long)
        return EMSGSIZE;
    for (i = 0; i < count; i++) {
        unsigned char *packet = slots[batch];
        PyObject *item = payloads->items[i];
        const unsigned char *payload = (const unsigned char *)PyBytes_AS_STRING(item);
        Py_ssize_t len = PyBytes_GET_SIZE(item);
        uint16_t seq = (uint16_t)(sequence_number + i);
        int marker = marker_on_last && i == count - 1 ? 0x80 : 0;
        int packet_len;

        packet[0] = first_byte;
        packet[1] = (unsigned char)(marker | payload_type);
        packet[2] = seq >> 8;
        packet[3] = seq & 0xFF;
        put32(packet + 4, timestamp);
        put32(packet + 8, ssrc);
        memcpy(packet + RTP_HEADER_LEN, extension, extension_len);
        if (picture_id == NO_PICTURE_ID) {
            memcpy(packet + header_len, payload, len);
            packet_len = (int)(header_len + len);
        }
        else
            packet_len = (int)(header_len
                               + write_picture_id(packet + header_len, payload, len, picture_id));
        status = protect(session, packet, &packet_len);
        if (status != 0) {
            *protect_status = status;
            return EPROTO;
        }
        iov[batch].iov_base = packet;
        iov[batch].iov_len = packet_len;
        batch++;
        if (i == 0 && uniform) {
            /* Segments per sendmsg: as many as fit in 60 kB, at most 64 (as in Python). */
            gso_size = (uint16_t)packet_len;
            per_call = GSO_MAX_BYTES / packet_len < BATCH ? GSO_MAX_BYTES / packet_len : BATCH;
        }
        if (batch == per_call || i == count - 1) {
            if ((status = send_batch(fd, to, to_len, batch, gso_size)) != 0)
                return status;
            batch = 0;
        }
    }
    return 0;
}
