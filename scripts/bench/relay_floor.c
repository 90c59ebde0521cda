/*
 * The smallest possible UDP relay, for scripts/bench/relay_floor.py.
 *
 *     relay_floor SECONDS MODE HOST:PORT [HOST:PORT ...]
 *
 * One UDP socket bound to 127.0.0.1:0 (prints "PORT <port>" on stdout), epoll_wait
 * blocking; on readiness recvfrom until EAGAIN and sendto every datagram to each
 * destination. MODE "plain" sends the datagram as received; MODE "rewrite" first writes
 * a per-destination 12-byte RTP header (own SSRC, own consecutive sequence number,
 * timestamp and first two bytes kept), the minimum an SFU does per packet and subscriber
 * without crypto. Exits after SECONDS or on SIGTERM/SIGINT, printing
 * "DONE <received> <sent> <send errors> <wake-ups with data>" on stdout.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_DATAGRAM = 2048, RTP_HEADER = 12, MAX_EVENTS = 4, MS_PER_S = 1000 };
static const uint32_t FIRST_SSRC = 0x10000000u;

struct destination {
    struct sockaddr_in address;
    uint32_t ssrc;
    uint16_t seq;
};

static volatile sig_atomic_t stopping = 0;

static void on_signal(int signal_number) {
    (void)signal_number;
    stopping = 1;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int parse_destination(const char *text, struct sockaddr_in *out) {
    char host[64];
    const char *colon = strrchr(text, ':');
    if (colon == NULL || (size_t)(colon - text) >= sizeof host) {
        return -1;
    }
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &out->sin_addr) == 1 ? 0 : -1;
}

static void rewrite_header(uint8_t *packet, const uint8_t *original, struct destination *d) {
    uint8_t header[RTP_HEADER];
    uint16_t seq = htons(d->seq++);
    uint32_t ssrc = htonl(d->ssrc);
    header[0] = original[0];
    header[1] = original[1];
    memcpy(header + 2, &seq, sizeof seq);
    memcpy(header + 4, original + 4, 4); /* timestamp */
    memcpy(header + 8, &ssrc, sizeof ssrc);
    memcpy(packet, header, RTP_HEADER);
}

int main(int argc, char **argv) {
    if (argc < 4 || (strcmp(argv[2], "plain") != 0 && strcmp(argv[2], "rewrite") != 0)) {
        fprintf(stderr, "usage: %s SECONDS plain|rewrite HOST:PORT...\n", argv[0]);
        return 2;
    }
    double deadline = now_s() + atof(argv[1]);
    int rewrite = strcmp(argv[2], "rewrite") == 0;
    int count = argc - 3;
    struct destination *destinations = calloc((size_t)count, sizeof *destinations);
    if (destinations == NULL) {
        return 1;
    }
    for (int i = 0; i < count; i++) {
        if (parse_destination(argv[3 + i], &destinations[i].address) != 0) {
            fprintf(stderr, "bad destination %s\n", argv[3 + i]);
            return 2;
        }
        destinations[i].ssrc = FIRST_SSRC + (uint32_t)i;
    }

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal; /* no SA_RESTART: epoll_wait returns EINTR */
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);

    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in local;
    memset(&local, 0, sizeof local);
    local.sin_family = AF_INET;
    local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof local;
    if (sock < 0 || bind(sock, (struct sockaddr *)&local, sizeof local) != 0 ||
        getsockname(sock, (struct sockaddr *)&local, &length) != 0) {
        perror("socket");
        return 1;
    }
    int epoll = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = sock};
    if (epoll < 0 || epoll_ctl(epoll, EPOLL_CTL_ADD, sock, &event) != 0) {
        perror("epoll");
        return 1;
    }
    printf("PORT %d\n", ntohs(local.sin_port));
    fflush(stdout);

    uint8_t packet[MAX_DATAGRAM];
    uint8_t original[RTP_HEADER] = {0};
    unsigned long long received = 0, sent = 0, errors = 0, wakeups = 0;
    struct epoll_event events[MAX_EVENTS];
    while (!stopping) {
        double left = deadline - now_s();
        if (left <= 0) {
            break;
        }
        int ready = epoll_wait(epoll, events, MAX_EVENTS, (int)(left * MS_PER_S) + 1);
        if (ready <= 0) {
            continue; /* timeout or EINTR: the loop condition decides */
        }
        wakeups++;
        for (;;) {
            ssize_t size = recvfrom(sock, packet, sizeof packet, 0, NULL, NULL);
            if (size < 0) {
                break; /* EAGAIN (or an error): back to epoll_wait */
            }
            received++;
            int is_rtp = rewrite && size >= RTP_HEADER;
            if (is_rtp) {
                memcpy(original, packet, RTP_HEADER);
            }
            for (int i = 0; i < count; i++) {
                if (is_rtp) {
                    rewrite_header(packet, original, &destinations[i]);
                }
                if (sendto(sock, packet, (size_t)size, 0,
                           (struct sockaddr *)&destinations[i].address,
                           sizeof destinations[i].address) == size) {
                    sent++;
                } else {
                    errors++;
                }
            }
        }
    }
    printf("DONE %llu %llu %llu %llu\n", received, sent, errors, wakeups);
    fflush(stdout);
    close(epoll);
    close(sock);
    free(destinations);
    return 0;
}
