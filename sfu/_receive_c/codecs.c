/* What the receive path reads of VP8 and H.264 payloads: frame starts, keyframes and
 * VP8 temporal layers. */
#include "receive.h"

/* ------------------------------------------------------------------ codecs */

static int
vp8_is_frame_start(const unsigned char *p, Py_ssize_t n)
{
    return n > 0 && (p[0] & 0x1F) == 0x10;
}

static int
h264_is_frame_start(const unsigned char *p, Py_ssize_t n)
{
    int nal_type, first;

    if (n < 2)
        return 0;
    nal_type = p[0] & 0x1F;
    if (nal_type == 24) {
        if (n < 5)
            return 0;
        nal_type = p[3] & 0x1F;
        first = p[4];
    } else if (nal_type == 28) {
        if (n < 3 || !(p[1] & 0x80))
            return 0;
        nal_type = p[1] & 0x1F;
        first = p[2];
    } else {
        first = p[1];
    }
    if (nal_type == 6 || nal_type == 7 || nal_type == 8 || nal_type == 9)
        return 1;
    return (nal_type == 1 || nal_type == 5) && (first & 0x80);
}

int
is_frame_start(const Stream *s, PyObject *payload)
{
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(payload);
    Py_ssize_t n = PyBytes_GET_SIZE(payload);
    return s->kind == KIND_VP8 ? vp8_is_frame_start(p, n) : h264_is_frame_start(p, n);
}

/* Length of a VP8 payload descriptor (RFC 7741 4.2), -1 when truncated. */
static Py_ssize_t
vp8_descriptor_length(const unsigned char *p, Py_ssize_t n)
{
    Py_ssize_t pos = 1;

    if (n < 1)
        return -1;
    if (p[0] & 0x80) {
        unsigned char x;
        if (n < 2)
            return -1;
        x = p[1];
        pos = 2;
        if (x & 0x80) {
            if (n <= pos)
                return -1;
            pos += (p[pos] & 0x80) ? 2 : 1;
        }
        if (x & 0x40)
            pos += 1;
        if (x & 0x30)
            pos += 1;
    }
    return pos <= n ? pos : -1;
}

void
vp8_temporal_layer(PyObject *payload, int *tid, int *sync)
{
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(payload);
    Py_ssize_t n = PyBytes_GET_SIZE(payload), pos = 2;
    unsigned char x;

    *tid = 0;
    *sync = 0;
    if (n < 2 || !(p[0] & 0x80))
        return;
    x = p[1];
    if (!(x & 0x20))
        return;
    if (x & 0x80) {
        if (n <= pos)
            return;
        pos += (p[pos] & 0x80) ? 2 : 1;
    }
    if (x & 0x40)
        pos += 1;
    if (n <= pos)
        return;
    *tid = p[pos] >> 6;
    *sync = (p[pos] & 0x20) != 0;
}

/* The payload's VP8 picture id (7- or 15-bit), -1 when it carries none: what
 * sfu.vp8.picture_id reads. */
long
vp8_picture_id(PyObject *payload)
{
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(payload);
    Py_ssize_t n = PyBytes_GET_SIZE(payload);

    if (n < 3 || !(p[0] & 0x80) || !(p[1] & 0x80))
        return -1;
    if (p[2] & 0x80)
        return n < 4 ? -1 : ((long)(p[2] & 0x7F) << 8) | p[3];
    return p[2];
}

/* The VP8 frame (descriptors stripped) starts with a keyframe header (RFC 6386 9.1):
 * the first 10 bytes of the frame, gathered across packets like the joined frame. */
int
vp8_frame_is_keyframe(Stream *s, uint16_t head, int count)
{
    unsigned char start[10];
    int have = 0, i;

    for (i = 0; i < count && have < 10; i++) {
        PyObject *payload = s->ring[(uint16_t)(head + i) & (RING - 1)].payload;
        const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(payload);
        Py_ssize_t n = PyBytes_GET_SIZE(payload);
        Py_ssize_t skip = vp8_descriptor_length(p, n), take;
        if (skip < 0)
            continue; /* depayloads to nothing */
        take = n - skip;
        if (take > 10 - have)
            take = 10 - have;
        memcpy(start + have, p + skip, (size_t)take);
        have += (int)take;
    }
    return have >= 10 && (start[0] & 1) == 0 && start[3] == 0x9d && start[4] == 0x01 &&
           start[5] == 0x2a;
}

/* An H.264 access unit holds an IDR slice (NAL type 5): alone, in a STAP-A, or as the
 * start fragment of an FU-A. */
int
h264_frame_is_keyframe(Stream *s, uint16_t head, int count)
{
    int i;

    for (i = 0; i < count; i++) {
        PyObject *payload = s->ring[(uint16_t)(head + i) & (RING - 1)].payload;
        const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(payload);
        Py_ssize_t n = PyBytes_GET_SIZE(payload), pos;
        int nal_type;
        if (n < 1)
            continue;
        nal_type = p[0] & 0x1F;
        if (nal_type == 5)
            return 1;
        if (nal_type == 28 && n >= 2 && (p[1] & 0x80) && (p[1] & 0x1F) == 5)
            return 1;
        if (nal_type == 24) {
            pos = 1;
            while (pos + 2 < n) {
                Py_ssize_t size = (p[pos] << 8) | p[pos + 1];
                if (size == 0 || pos + 2 + size > n)
                    break;
                if ((p[pos + 2] & 0x1F) == 5)
                    return 1;
                pos += 2 + size;
            }
        }
    }
    return 0;
}
