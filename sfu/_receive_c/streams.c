/* Per-SSRC state of the receive path: statistics, NACK bookkeeping, timestamp
 * unwrapping and frame assembly (the rules of sfu/assembler.py), and the events they
 * emit. */
#include "receive.h"

/* ------------------------------------------------------------------ events */

int
emit(Receiver *self, PyObject *event)
{
    int status;

    if (event == NULL)
        return -1;
    status = PyList_Append(self->events, event);
    Py_DECREF(event);
    return status;
}

/* ------------------------------------------------------------------ streams */

Stream *
find_stream(Receiver *self, uint32_t ssrc)
{
    Py_ssize_t i;

    if (self->last != NULL && self->last->ssrc == ssrc)
        return self->last;
    for (i = 0; i < self->count; i++) {
        if (self->streams[i]->ssrc == ssrc) {
            self->last = self->streams[i];
            return self->last;
        }
    }
    return NULL;
}

void
clear_ring(Stream *s)
{
    int i;

    if (s->ring == NULL)
        return;
    for (i = 0; i < RING; i++)
        Py_CLEAR(s->ring[i].payload);
    s->held = 0;
}

void
free_stream(Stream *s)
{
    Py_CLEAR(s->direct_fn);
    Py_CLEAR(s->direct_legs);
    Py_CLEAR(s->direct_gso);
    clear_ring(s);
    PyMem_Free(s->ring);
    Py_XDECREF(s->token);
    PyMem_Free(s);
}

static int64_t
unwrap_timestamp(Stream *s, uint32_t timestamp)
{
    int64_t delta;

    if (!s->ts_started) {
        s->ts_started = 1;
        s->ts_last = timestamp;
        return 0;
    }
    delta = (int64_t)(uint32_t)(timestamp - s->ts_last);
    if (delta >= 0x80000000LL)
        delta -= 0x100000000LL;
    s->ts_last = timestamp;
    s->ts_extended += delta;
    return s->ts_extended;
}

void
add_statistics(Stream *s, uint16_t seq, uint32_t timestamp, double now)
{
    int in_order = !s->stats_started || uint16_gt(seq, s->max_seq);

    s->received += 1;
    if (!s->stats_started)
        s->base_seq = seq;
    if (in_order) {
        int64_t arrival = (int64_t)(now * s->clock_rate);
        if (s->stats_started && seq < s->max_seq)
            s->cycles += 1 << 16;
        s->max_seq = seq;
        if (s->have_last && (int64_t)timestamp != s->last_timestamp && s->received > 1) {
            int64_t diff =
                (arrival - s->last_arrival) - ((int64_t)timestamp - s->last_timestamp);
            if (diff < 0)
                diff = -diff;
            s->jitter_q4 += diff - ((s->jitter_q4 + 8) >> 4);
        }
        s->have_last = 1;
        s->last_arrival = arrival;
        s->last_timestamp = timestamp;
    }
    s->stats_started = 1;
}

/* aiortc's NackGenerator.add; returns 1 when packets went missing (send a NACK). */
int
nack_add(Stream *s, uint16_t seq)
{
    int missed = 0;

    if (!s->nack_started) {
        s->nack_started = 1;
        s->nack_max = seq;
        return 0;
    }
    if (uint16_gt(seq, s->nack_max)) {
        uint16_t gap = (uint16_t)(seq - s->nack_max - 1), i, from = 0;
        /* Only the last NACK_HISTORY survive the truncation. */
        if (gap > NACK_HISTORY)
            from = gap - NACK_HISTORY;
        for (i = from; i < gap; i++) {
            uint16_t lost = (uint16_t)(s->nack_max + 1 + i);
            s->missing[lost % MISSING_RING] = (uint32_t)lost + 1;
            missed = 1;
        }
        /* seq is received; entries the window left behind are ignored by missing_list. */
        s->missing[seq % MISSING_RING] = 0;
        s->nack_max = seq;
    } else if (s->missing[seq % MISSING_RING] == (uint32_t)seq + 1) {
        s->missing[seq % MISSING_RING] = 0;
    }
    return missed;
}

PyObject *
missing_list(Stream *s)
{
    PyObject *list = PyList_New(0);
    int i;

    if (list == NULL)
        return NULL;
    /* Within the window aiortc keeps: [max - 128, max). */
    for (i = NACK_HISTORY; i >= 1; i--) {
        uint16_t seq = (uint16_t)(s->nack_max - i);
        if (s->missing[seq % MISSING_RING] == (uint32_t)seq + 1) {
            PyObject *value = PyLong_FromLong(seq);
            if (value == NULL || PyList_Append(list, value) < 0) {
                Py_XDECREF(value);
                Py_DECREF(list);
                return NULL;
            }
            Py_DECREF(value);
        }
    }
    /* In numeric order, like aiortc's sorted(missing): across a wrap-around the oldest
     * (65535) comes after the newest (0), and the NACK's FCI entries in that order. */
    if (PyList_Sort(list) < 0) {
        Py_DECREF(list);
        return NULL;
    }
    return list;
}

/* ------------------------------------------------------------------ assembly */

static int video_release(Receiver *self, Stream *s);

static int
lose_sync(Receiver *self, Stream *s)
{
    clear_ring(s);
    s->head_valid = 0;
    s->hole_valid = 0;
    s->blocked_since = -1;
    s->skipped += 1;
    s->awaiting_keyframe = 1;
    return emit(self, Py_BuildValue("(iO)", EV_LOSS, s->token));
}

static void
block_at(Stream *s, uint16_t hole)
{
    s->hole = hole;
    s->hole_valid = 1;
    if (s->blocked_since < 0)
        s->blocked_since = monotonic();
}

static int
emit_frame(Receiver *self, Stream *s, uint16_t head, uint16_t end, uint32_t timestamp)
{
    int count = (uint16_t)(end - head) + 1, i, keyframe, tid = 0, sync = 0, handed;
    int64_t pts;
    PyObject *payloads, *event;

    if (s->kind == KIND_VP8)
        vp8_temporal_layer(s->ring[head & (RING - 1)].payload, &tid, &sync);
    keyframe = s->kind == KIND_VP8 ? vp8_frame_is_keyframe(s, head, count)
                                   : h264_frame_is_keyframe(s, head, count);
    payloads = PyTuple_New(count);
    if (payloads == NULL)
        return -1;
    for (i = 0; i < count; i++) {
        Slot *slot = &s->ring[(uint16_t)(head + i) & (RING - 1)];
        PyTuple_SET_ITEM(payloads, i, slot->payload); /* steals the slot's reference */
        slot->payload = NULL;
    }
    s->held -= count;
    s->head = (uint16_t)(end + 1);
    s->hole_valid = 0;
    s->blocked_since = -1;
    s->frames += 1;
    if (keyframe)
        s->keyframes += 1;
    pts = unwrap_timestamp(s, timestamp);
    handed = hand_off(self, s, payloads, pts, keyframe, tid, sync);
    if (handed != 0) {
        Py_DECREF(payloads);
        return handed < 0 ? -1 : 0;
    }
    event = Py_BuildValue("(iONLOiO)", EV_FRAME, s->token, payloads, (long long)pts,
                          keyframe ? Py_True : Py_False, tid, sync ? Py_True : Py_False);
    return emit(self, event);
}

static int
video_release(Receiver *self, Stream *s)
{
    while (s->head_valid) {
        uint16_t head = s->head, seq = head;
        Slot *first = &s->ring[head & (RING - 1)];
        uint32_t timestamp;
        int end_valid = 0, i;
        uint16_t end = 0;

        if (first->payload == NULL) {
            if (s->held)
                block_at(s, head);
            else {
                /* Nothing after it either: the stream is idle, not missing a packet
                 * (a publisher that paused must not lose its next frame to the wait). */
                s->hole = head;
                s->hole_valid = 1;
            }
            return 0;
        }
        timestamp = first->timestamp;
        for (i = 0; i < RING; i++) {
            Slot *slot = &s->ring[seq & (RING - 1)];
            if (slot->payload == NULL) {
                block_at(s, seq);
                return 0;
            }
            if (slot->timestamp != timestamp) {
                end = (uint16_t)(seq - 1); /* the sender did not set the marker bit */
                end_valid = 1;
                break;
            }
            if (slot->marker) {
                end = seq;
                end_valid = 1;
                break;
            }
            seq = (uint16_t)(seq + 1);
        }
        if (!end_valid)
            return lose_sync(self, s);
        if (emit_frame(self, s, head, end, timestamp) < 0)
            return -1;
    }
    return 0;
}

static int
is_start(Stream *s, uint16_t seq)
{
    Slot *slot = &s->ring[seq & (RING - 1)], *previous;

    if (slot->payload == NULL)
        return 0;
    if (is_frame_start(s, slot->payload))
        return 1;
    previous = &s->ring[(uint16_t)(seq - 1) & (RING - 1)];
    return previous->payload != NULL &&
           (previous->marker || previous->timestamp != slot->timestamp);
}

static int
video_skip(Receiver *self, Stream *s)
{
    uint16_t hole = s->hole, resume = 0, seq;
    int found = 0, i;

    s->skipped += 1;
    for (i = 1; i < RING; i++) {
        seq = (uint16_t)(hole + i);
        if ((uint16_t)(seq - s->head) >= RING)
            break;
        if (is_start(s, seq)) {
            resume = seq;
            found = 1;
            break;
        }
    }
    if (!found)
        return lose_sync(self, s); /* counted again there, as VideoFrameAssembler does */
    for (seq = s->head; seq != resume; seq = (uint16_t)(seq + 1)) {
        Slot *slot = &s->ring[seq & (RING - 1)];
        if (slot->payload != NULL)
            s->held -= 1;
        Py_CLEAR(slot->payload);
    }
    s->head = resume;
    s->hole_valid = 0;
    s->blocked_since = -1;
    s->awaiting_keyframe = 1;
    if (emit(self, Py_BuildValue("(iO)", EV_LOSS, s->token)) < 0)
        return -1;
    return video_release(self, s);
}

int
video_push(Receiver *self, Stream *s, uint16_t seq, uint32_t timestamp, int marker,
           PyObject *payload)
{
    uint16_t offset;
    Slot *slot;

    for (;;) {
        if (!s->head_valid) {
            if (is_frame_start(s, payload)) {
                s->head = seq;
                s->head_valid = 1;
            } else {
                if (marker) {
                    s->head = (uint16_t)(seq + 1);
                    s->head_valid = 1;
                }
                return 0;
            }
        }
        offset = (uint16_t)(seq - s->head);
        if (offset >= 0x8000) {
            s->late_packets += 1;
            return 0;
        }
        if (offset >= RING) {
            if (lose_sync(self, s) < 0)
                return -1;
            continue; /* push it again, into the emptied buffer */
        }
        break;
    }
    slot = &s->ring[seq & (RING - 1)];
    if (slot->payload != NULL)
        return 0; /* duplicate */
    Py_INCREF(payload);
    slot->payload = payload;
    slot->seq = seq;
    slot->timestamp = timestamp;
    slot->marker = (uint8_t)marker;
    s->held += 1;
    if (marker || (s->hole_valid && seq == s->hole) || offset == 0) {
        if (video_release(self, s) < 0)
            return -1;
    }
    if (s->blocked_since >= 0 && monotonic() - s->blocked_since > self->max_wait)
        return video_skip(self, s);
    return 0;
}

int
audio_push(Receiver *self, Stream *s, uint16_t seq, uint32_t timestamp, int level,
           int voice, PyObject *payload)
{
    int64_t pts;
    int handed;
    PyObject *payloads;

    if (s->audio_last_valid) {
        uint16_t offset = (uint16_t)(seq - s->audio_last);
        if (offset == 0 || offset >= 0x8000) {
            s->late_packets += 1;
            return 0;
        }
    }
    s->audio_last = seq;
    s->audio_last_valid = 1;
    pts = unwrap_timestamp(s, timestamp);
    if (level >= 0 && s->direct_fn != NULL) {
        Tally *t = &s->tally;
        if (level < t->level_min)
            t->level_min = level;
        t->voice |= voice;
        t->levels += 1;
        if (level == DIGITAL_SILENCE) {
            s->silent_frames += 1;
            t->silent += 1;
            t->last_silent = monotonic();
            return 0;
        }
    } else if (level >= 0) {
        if (emit(self, Py_BuildValue("(iOiO)", EV_LEVEL, s->token, level,
                                     voice ? Py_True : Py_False)) < 0)
            return -1;
        if (level == DIGITAL_SILENCE) {
            s->silent_frames += 1;
            return emit(self, Py_BuildValue("(iO)", EV_SILENCE, s->token));
        }
    }
    s->frames += 1;
    payloads = PyTuple_Pack(1, payload);
    if (payloads == NULL)
        return -1;
    handed = hand_off(self, s, payloads, pts, 1, 0, 0);
    if (handed != 0) {
        Py_DECREF(payloads);
        return handed < 0 ? -1 : 0;
    }
    return emit(self, Py_BuildValue("(iONLOiO)", EV_FRAME, s->token, payloads,
                                    (long long)pts, Py_True, 0, Py_False));
}
