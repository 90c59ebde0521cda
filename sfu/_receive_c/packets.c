/* One datagram or RTP packet through the receive path: SRTP unprotect, RTP header,
 * extensions and padding, demultiplexing by SSRC, RTX unwrapping, then the stream. */
#include "receive.h"

/* ------------------------------------------------------------------ packets */

/* One unprotected RTP packet. Returns -1 only on a Python error. */
int
handle_rtp(Receiver *self, const unsigned char *p, Py_ssize_t n, double now)
{
    Py_ssize_t pos, end = n;
    uint32_t ssrc, timestamp;
    uint16_t seq;
    int marker, payload_type, level = -1, voice = 0, status;
    Stream *s;
    PyObject *payload;

    if (n < 12 || (p[0] >> 6) != 2) {
        self->malformed++;
        return 0;
    }
    marker = p[1] >> 7;
    payload_type = p[1] & 0x7F;
    seq = (uint16_t)((p[2] << 8) | p[3]);
    timestamp = ((uint32_t)p[4] << 24) | ((uint32_t)p[5] << 16) | ((uint32_t)p[6] << 8) | p[7];
    ssrc = ((uint32_t)p[8] << 24) | ((uint32_t)p[9] << 16) | ((uint32_t)p[10] << 8) | p[11];
    pos = 12 + 4 * (p[0] & 0x0F);
    if (p[0] & 0x10) {
        Py_ssize_t words, ext_end;
        unsigned profile;
        if (pos + 4 > n) {
            self->malformed++;
            return 0;
        }
        profile = (p[pos] << 8) | p[pos + 1];
        words = (p[pos + 2] << 8) | p[pos + 3];
        ext_end = pos + 4 + 4 * words;
        if (ext_end > n) {
            self->malformed++;
            return 0;
        }
        pos += 4;
        if (profile == 0xBEDE) {
            while (pos < ext_end) {
                int id = p[pos] >> 4, len = (p[pos] & 0x0F) + 1;
                if (id == 0) {
                    pos++;
                    continue;
                }
                if (id == 15 || pos + 1 + len > ext_end)
                    break;
                if (id == self->audio_level_id) {
                    voice = (p[pos + 1] & 0x80) != 0;
                    level = p[pos + 1] & 0x7F;
                }
                pos += 1 + len;
            }
        } else if ((profile & 0xFFF0) == 0x1000) {
            while (pos + 1 < ext_end) {
                int id = p[pos], len = p[pos + 1];
                if (id == 0) {
                    pos++;
                    continue;
                }
                if (pos + 2 + len > ext_end)
                    break;
                if (id == self->audio_level_id && len >= 1) {
                    voice = (p[pos + 2] & 0x80) != 0;
                    level = p[pos + 2] & 0x7F;
                }
                pos += 2 + len;
            }
        }
        pos = ext_end;
    }
    if (pos > n) {
        self->malformed++;
        return 0;
    }
    if (p[0] & 0x20) {
        int padding = p[n - 1];
        if (padding == 0 || padding > n - pos) {
            self->malformed++;
            return 0;
        }
        end = n - padding;
    }
    s = find_stream(self, ssrc);
    if (s == NULL) {
        if (!guard_admit_unknown(self, ssrc))
            return 0;
        return emit(self, Py_BuildValue("(iy#)", EV_UNKNOWN, (const char *)p, n));
    }
    if (payload_type != s->payload_type) {
        /* A renegotiated codec, or RTX on a media SSRC: Python routes it again. */
        s->dropped++;
        if (!guard_admit_unknown(self, ssrc))
            return 0;
        return emit(self, Py_BuildValue("(iy#)", EV_UNKNOWN, (const char *)p, n));
    }
    if (!guard_admit_rtp(self, s, n)) {
        /* Refused, not lost: a NACK for it would only bring it back over the cap (and
         * the publisher's repairs with it), so its number counts as seen. */
        if (s->kind != KIND_AUDIO && s->kind != KIND_RTX && nack_add(s, seq))
            s->nack_owed = 1;
        return 0;
    }
    add_statistics(s, seq, timestamp, now);
    if (s->kind == KIND_RTX) {
        if (end - pos < 2)
            return 0; /* padding only: a probe */
        seq = (uint16_t)((p[pos] << 8) | p[pos + 1]);
        pos += 2;
        s = s->media;
        if (s == NULL)
            return 0;
    }
    s->packets++;
    if (s->kind != KIND_AUDIO && (nack_add(s, seq) | s->nack_owed)) {
        PyObject *lost = missing_list(s);
        s->nack_owed = 0;
        if (lost == NULL)
            return -1;
        s->nacked += (uint64_t)PyList_GET_SIZE(lost);
        if (emit(self, Py_BuildValue("(iOkN)", EV_NACK, s->token, (unsigned long)s->ssrc,
                                     lost)) < 0)
            return -1;
    }
    payload = PyBytes_FromStringAndSize((const char *)p + pos, end - pos);
    if (payload == NULL)
        return -1;
    if (s->kind == KIND_AUDIO)
        status = audio_push(self, s, seq, timestamp, level, voice, payload);
    else
        status = video_push(self, s, seq, timestamp, marker, payload);
    Py_DECREF(payload);
    return status;
}

int
is_rtcp(const unsigned char *p, Py_ssize_t n)
{
    return n >= 2 && p[1] >= 192 && p[1] <= 208;
}

PyObject *
address_of(const struct sockaddr_storage *address)
{
    char host[INET6_ADDRSTRLEN];

    if (address->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)address;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        return Py_BuildValue("(si)", host, ntohs(in->sin_port));
    }
    if (address->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)address;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        return Py_BuildValue("(siIk)", host, ntohs(in6->sin6_port),
                             (unsigned)ntohl(in6->sin6_flowinfo),
                             (unsigned long)in6->sin6_scope_id);
    }
    Py_RETURN_NONE;
}

/* One datagram as it arrived, in a buffer it may be unprotected in. */
int
handle_datagram(Receiver *self, unsigned char *p, int n, PyObject *address, double now)
{
    int length = n, status;

    self->datagrams++;
    if (n < 1 || p[0] < 128 || p[0] > 191) {
        if (address == NULL) {
            address = Py_None;
        }
        if (!guard_admit_control(self, 0))
            return 0;
        return emit(self, Py_BuildValue("(iy#O)", EV_OTHER, (const char *)p, (Py_ssize_t)n,
                                        address));
    }
    if (is_rtcp(p, n)) {
        if (!guard_admit_control(self, 1))
            return 0;
        return emit(self, Py_BuildValue("(iy#)", EV_RTCP, (const char *)p, (Py_ssize_t)n));
    }
    status = self->unprotect(self->session, p, &length);
    if (status != 0) {
        self->unprotect_errors++;
        return 0;
    }
    return handle_rtp(self, p, length, now);
}
