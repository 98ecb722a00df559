/*
 * ws_echo_load: a WebSocket echo load client in plain C (epoll, no library),
 * cheap enough per message that a benchmark on the same cores measures the
 * server and not the client (bench_cluster.py --part workers).
 *
 * It opens K connections to HOST:PORT with a real HTTP Upgrade handshake
 * (Sec-WebSocket-Key; the 101 status line is checked and the response read
 * to its end, Sec-WebSocket-Accept is not verified), then keeps W messages
 * in flight on every connection: masked text frames of SIZE bytes, as a
 * browser must send them, each sent again as soon as its echo is back (or,
 * with --burst, the W together once all W are back). Echoed frames
 * (unmasked) are parsed across partial reads; pings are answered with
 * pongs, so the server's keepalive never closes a connection between rounds.
 *
 * What makes it cheap: no work in user space to speak of (its CPU is the
 * kernel's TCP), the frames made while handling one read go out in one
 * write, and --pace-us N sleeps N microseconds between event-loop turns so
 * that echoes pile up and one read and one write serve several messages
 * (syscalls are costly in a VM; with thousands of messages in flight the
 * server never waits for the client). The server still gets every frame as
 * a browser would send it, one message a frame.
 *
 * Compiled at run time by the benchmark (cc -O2 ws_echo_load.c); no binary
 * is committed. Loopback use only: the host defaults to 127.0.0.1.
 *
 * Modes (each prints one JSON object a line on stdout):
 *   --duration S   open, echo for S seconds, print the round, exit
 *   --messages N   open, echo until N messages came back in all, print, exit
 *   --control      open, then read commands on stdin: "echo S" runs one
 *                  round of S seconds and prints it; "quit" or EOF exits.
 *                  Between rounds the connections are held, idle.
 * The first line is always {"event": "opened", ...}.
 *
 * A round counts the messages echoed within its S seconds ("messages",
 * "rate"), then stops sending and waits for the ones in flight ("drained");
 * "cpu_seconds" is this process's user + system CPU (getrusage) over the
 * S seconds.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { CONNECTING, HANDSHAKE, OPEN, CLOSED };
enum phase { IDLE, SENDING, DRAINING };

struct conn {
    int fd;
    enum state state;
    int inflight;
    int out_armed;
    unsigned char *rbuf;
    size_t rlen, rcap;
    unsigned char *wbuf;
    size_t wlen, wcap;
};

static const char *host = "127.0.0.1";
static int port;
static int connections = 100;
static int window = 1;
static int burst = 0;
static int pace_us = 0;
static int size = 32;
static double duration = 0;
static long long messages_goal = 0;
static int control = 0;
static const char *path = "/load?user=load";
static int concurrency = 64;
static double open_timeout = 120;
static double drain_timeout = 10;

static int ep;
static struct conn *conns;
static int next_to_open, handshaking, opened, failed, closed_by_server;
static enum phase phase = IDLE;
static long long counted, echoed, sent, bad_frames, pings;
static long long inflight_total;
static unsigned char *payload, *scratch;
static uint32_t rng = 2463534242u;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint32_t next_random(void) { /* xorshift32: mask keys need not be secret here */
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static double cpu_user(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6;
}

static double cpu_now(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6 + usage.ru_stime.tv_sec +
           usage.ru_stime.tv_usec / 1e6;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void grow(unsigned char **buf, size_t *cap, size_t need) {
    if (*cap >= need) return;
    size_t cap2 = *cap ? *cap : 4096;
    while (cap2 < need) cap2 *= 2;
    unsigned char *grown = realloc(*buf, cap2);
    if (!grown) die("realloc");
    *buf = grown;
    *cap = cap2;
}

static void set_events(struct conn *c, uint32_t events) {
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0) die("epoll_ctl");
}

static void close_conn(struct conn *c, int by_server) {
    if (c->state == CLOSED) return;
    if (c->state == CONNECTING || c->state == HANDSHAKE) {
        handshaking--;
        failed++;
    } else if (by_server) {
        closed_by_server++;
    }
    inflight_total -= c->inflight;
    c->inflight = 0;
    c->state = CLOSED;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    free(c->rbuf);
    free(c->wbuf);
    c->rbuf = c->wbuf = NULL;
    c->rlen = c->rcap = c->wlen = c->wcap = 0;
}

/* Queue bytes; flush_queue writes them: the frames made while handling one
 * read go out in one write (TCP_NODELAY: one segment each flush). */
static void send_bytes(struct conn *c, const unsigned char *data, size_t len) {
    if (c->state == CLOSED) return;
    grow(&c->wbuf, &c->wcap, c->wlen + len);
    memcpy(c->wbuf + c->wlen, data, len);
    c->wlen += len;
}

static void flush_queue(struct conn *c) {
    size_t done = 0;
    while (c->state != CLOSED && done < c->wlen) {
        ssize_t n = write(c->fd, c->wbuf + done, c->wlen - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            close_conn(c, 1);
            return;
        }
        done += (size_t)n;
    }
    if (c->state == CLOSED) return;
    memmove(c->wbuf, c->wbuf + done, c->wlen - done);
    c->wlen -= done;
    if (c->wlen && !c->out_armed) {
        c->out_armed = 1;
        set_events(c, EPOLLIN | EPOLLOUT);
    } else if (!c->wlen && c->out_armed) {
        c->out_armed = 0;
        set_events(c, EPOLLIN);
    }
}

/* One masked frame from the client (RFC 6455 5.3: a client masks every frame). */
static void send_frame(struct conn *c, int opcode, const unsigned char *data, size_t len) {
    size_t header = 2;
    scratch[0] = 0x80 | opcode;
    if (len < 126) {
        scratch[1] = 0x80 | len;
    } else if (len < 65536) {
        scratch[1] = 0x80 | 126;
        scratch[2] = len >> 8;
        scratch[3] = len & 0xff;
        header = 4;
    } else {
        scratch[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++) scratch[2 + i] = ((uint64_t)len >> (56 - 8 * i)) & 0xff;
        header = 10;
    }
    uint32_t key = next_random();
    unsigned char *mask = scratch + header;
    memcpy(mask, &key, 4);
    unsigned char *out = mask + 4;
    for (size_t i = 0; i < len; i++) out[i] = data[i] ^ mask[i & 3];
    send_bytes(c, scratch, header + 4 + len);
}

static int may_send(void) {
    if (phase != SENDING) return 0;
    return messages_goal == 0 || sent < messages_goal;
}

static void send_message(struct conn *c) {
    c->inflight++;
    inflight_total++;
    sent++;
    send_frame(c, 0x1, payload, size);
}

static void fill_window(struct conn *c) {
    if (burst && c->inflight > 0) return; /* a burst goes out when the last came back */
    while (c->state == OPEN && c->inflight < window && may_send()) send_message(c);
}

static void start_connect(void);

static void handshake_done(struct conn *c, int ok) {
    if (!ok) {
        close_conn(c, 0);
    } else {
        handshaking--;
        opened++;
        c->state = OPEN;
    }
    start_connect();
}

static void start_connect(void) {
    while (handshaking < concurrency && next_to_open < connections) {
        struct conn *c = &conns[next_to_open++];
        c->state = CONNECTING;
        handshaking++;
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            c->state = CLOSED;
            handshaking--;
            failed++;
            continue;
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
        inet_pton(AF_INET, host, &addr.sin_addr);
        struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
        if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
            close_conn(c, 0);
        }
    }
}

static void send_request(struct conn *c) {
    unsigned char key[16];
    for (int i = 0; i < 16; i += 4) {
        uint32_t r = next_random();
        memcpy(key + i, &r, 4);
    }
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char encoded[25];
    int j = 0;
    for (int i = 0; i < 15; i += 3) {
        uint32_t v = key[i] << 16 | key[i + 1] << 8 | key[i + 2];
        encoded[j++] = b64[v >> 18 & 63];
        encoded[j++] = b64[v >> 12 & 63];
        encoded[j++] = b64[v >> 6 & 63];
        encoded[j++] = b64[v & 63];
    }
    encoded[j++] = b64[key[15] >> 2];
    encoded[j++] = b64[(key[15] & 3) << 4];
    encoded[j++] = '=';
    encoded[j++] = '=';
    encoded[j] = 0;
    char request[512];
    int len = snprintf(request, sizeof request,
                       "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                       "Sec-WebSocket-Version: 13\r\nUser-Agent: ws_echo_load\r\n\r\n",
                       path, host, port, encoded);
    c->state = HANDSHAKE;
    set_events(c, EPOLLIN);
    send_bytes(c, (unsigned char *)request, len);
    flush_queue(c);
}

static void on_echo(struct conn *c) {
    if (c->inflight > 0) {
        c->inflight--;
        inflight_total--;
    }
    echoed++;
    if (phase == SENDING) counted++;
    fill_window(c);
}

/* Parse whole frames from the read buffer; keep a partial one for the next read. */
static void parse_frames(struct conn *c) {
    size_t pos = 0;
    while (c->state == OPEN && c->rlen - pos >= 2) {
        unsigned char *f = c->rbuf + pos;
        size_t avail = c->rlen - pos;
        uint64_t len = f[1] & 0x7f;
        size_t header = 2;
        if (len == 126) {
            if (avail < 4) break;
            len = (uint64_t)f[2] << 8 | f[3];
            header = 4;
        } else if (len == 127) {
            if (avail < 10) break;
            len = 0;
            for (int i = 0; i < 8; i++) len = len << 8 | f[2 + i];
            header = 10;
        }
        if (f[1] & 0x80) header += 4; /* a server must not mask; tolerate it */
        if (avail < header + len) {
            grow(&c->rbuf, &c->rcap, header + len + 16384);
            break;
        }
        int opcode = f[0] & 0x0f;
        int fin = f[0] & 0x80;
        unsigned char *data = f + header;
        if (f[1] & 0x80) {
            for (uint64_t i = 0; i < len; i++) data[i] ^= f[header - 4 + (i & 3)];
        }
        pos += header + len;
        if (opcode == 0x1 || opcode == 0x2 || opcode == 0x0) {
            if (fin) {
                if (len != (uint64_t)size && opcode != 0x0) bad_frames++;
                on_echo(c);
            }
        } else if (opcode == 0x9) {
            pings++;
            send_frame(c, 0xA, data, len);
        } else if (opcode == 0x8) {
            close_conn(c, 1);
            return;
        } else if (opcode != 0xA) {
            bad_frames++;
        }
    }
    if (c->state == CLOSED) return;
    if (pos) {
        memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
        c->rlen -= pos;
    }
}

static void on_readable(struct conn *c) {
    grow(&c->rbuf, &c->rcap, c->rlen + 16384);
    ssize_t n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        close_conn(c, 1);
        return;
    }
    if (n < 0) return;
    c->rlen += n;
    if (c->state == HANDSHAKE) {
        unsigned char *end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
        if (!end) {
            if (c->rlen > 16384) handshake_done(c, 0);
            return;
        }
        int ok = c->rlen >= 12 && memcmp(c->rbuf, "HTTP/1.1 101", 12) == 0;
        size_t consumed = end + 4 - c->rbuf;
        memmove(c->rbuf, c->rbuf + consumed, c->rlen - consumed);
        c->rlen -= consumed;
        handshake_done(c, ok);
        if (!ok) return;
        fill_window(c);
    }
    if (c->state == OPEN) parse_frames(c);
    if (c->state != CLOSED && c->wlen && !c->out_armed) flush_queue(c);
}

static void on_event(struct conn *c, uint32_t events) {
    if (c->state == CLOSED) return;
    if (c->state == CONNECTING) {
        int error = 0;
        socklen_t len = sizeof error;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &len);
        if (error || (events & (EPOLLERR | EPOLLHUP))) {
            handshake_done(c, 0);
        } else {
            send_request(c);
        }
        return;
    }
    if (events & EPOLLOUT) flush_queue(c);
    if (c->state != CLOSED && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) on_readable(c);
}

static char line[256];
static size_t line_len;
static int stdin_open = 1;

/* Run the loop until done() is true or the deadline passes. */
static void loop_until(int (*done)(void), double deadline) {
    struct epoll_event events[512];
    while (!done()) {
        double left = deadline - now();
        if (left <= 0) return;
        int timeout = left > 1 ? 1000 : (int)(left * 1000) + 1;
        int n = epoll_wait(ep, events, 512, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == NULL) {
                ssize_t got = read(0, line + line_len, sizeof line - 1 - line_len);
                if (got <= 0) {
                    stdin_open = 0;
                    epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
                } else {
                    line_len += got;
                }
                continue;
            }
            on_event(events[i].data.ptr, events[i].events);
        }
        /* Let echoes pile up: fewer reads and writes per message (each syscall
         * is costly in a VM); the round trip of a message is far longer anyway. */
        if (pace_us && n < 512 && phase != IDLE) usleep(pace_us);
    }
}

static int all_settled(void) { return opened + failed >= connections; }
static int nothing_in_flight(void) { return inflight_total <= 0; }
static int goal_reached(void) { return echoed >= messages_goal; }
static int has_command(void) { return !stdin_open || memchr(line, '\n', line_len) != NULL; }

static void open_all(void) {
    double started = now();
    start_connect();
    loop_until(all_settled, started + open_timeout);
    for (int i = 0; i < connections; i++) {
        if (conns[i].state == CONNECTING || conns[i].state == HANDSHAKE) close_conn(&conns[i], 0);
    }
    failed += connections - next_to_open; /* never started: the open timeout passed */
    next_to_open = connections;
    printf("{\"event\": \"opened\", \"connections\": %d, \"opened\": %d, \"failed\": %d, "
           "\"seconds\": %.3f}\n",
           connections, opened, failed, now() - started);
    fflush(stdout);
}

static int never(void) { return 0; }

static void round_and_report(double seconds) {
    counted = echoed = sent = bad_frames = pings = 0;
    closed_by_server = 0;
    double cpu_before = cpu_now(), user_before = cpu_user();
    double started = now();
    phase = SENDING;
    for (int i = 0; i < connections; i++) {
        fill_window(&conns[i]);
        if (conns[i].state == OPEN) flush_queue(&conns[i]);
    }
    loop_until(messages_goal ? goal_reached : never, started + seconds);
    double elapsed = now() - started;
    double cpu = cpu_now() - cpu_before, user = cpu_user() - user_before;
    long long in_window = counted;
    phase = DRAINING;
    loop_until(nothing_in_flight, now() + drain_timeout);
    phase = IDLE;
    int open_now = 0;
    for (int i = 0; i < connections; i++) open_now += conns[i].state == OPEN;
    printf("{\"event\": \"echo\", \"seconds\": %.4f, \"messages\": %lld, \"rate\": %.1f, "
           "\"drained\": %lld, \"echoed\": %lld, \"lost_in_flight\": %lld, \"cpu_seconds\": %.4f, \"cpu_user_seconds\": %.4f, "
           "\"cpu_us_per_message\": %.3f, \"open\": %d, \"closed_by_server\": %d, "
           "\"bad_frames\": %lld, \"pings\": %lld, \"window\": %d, \"burst\": %s, \"size\": %d}\n",
           elapsed, in_window, in_window / elapsed, echoed - in_window, echoed,
           inflight_total > 0 ? inflight_total : 0, cpu, user,
           in_window ? cpu / in_window * 1e6 : 0.0, open_now, closed_by_server, bad_frames, pings,
           window, burst ? "true" : "false", size);
    fflush(stdout);
}

static void usage(void) {
    fprintf(stderr,
            "usage: ws_echo_load --port P [--host 127.0.0.1] [--connections K] [--window W]\n"
            "       [--size BYTES] [--burst] [--path /load?user=load] [--concurrency N]\n"
            "       (--duration S | --messages N | --control)\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--control")) { control = 1; continue; }
        if (!strcmp(a, "--burst")) { burst = 1; continue; }
        if (!v) usage();
        if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--host")) host = v;
        else if (!strcmp(a, "--connections")) connections = atoi(v);
        else if (!strcmp(a, "--window")) window = atoi(v);
        else if (!strcmp(a, "--size")) size = atoi(v);
        else if (!strcmp(a, "--duration")) duration = atof(v);
        else if (!strcmp(a, "--messages")) messages_goal = atoll(v);
        else if (!strcmp(a, "--path")) path = v;
        else if (!strcmp(a, "--pace-us")) pace_us = atoi(v);
        else if (!strcmp(a, "--concurrency")) concurrency = atoi(v);
        else if (!strcmp(a, "--open-timeout")) open_timeout = atof(v);
        else usage();
        i++;
    }
    if (port <= 0 || connections <= 0 || window <= 0 || size < 0 || concurrency <= 0) usage();
    if (!control && duration <= 0 && messages_goal <= 0) usage();
    struct in_addr check;
    if (inet_pton(AF_INET, host, &check) != 1) {
        fprintf(stderr, "ws_echo_load: --host must be an IPv4 address\n");
        return 2;
    }
    rng ^= (uint32_t)getpid() * 2654435761u;
    payload = malloc(size + 1);
    scratch = malloc(size + 16);
    if (!payload || !scratch) die("malloc");
    for (int i = 0; i < size; i++) payload[i] = 'a' + i % 26;
    conns = calloc(connections, sizeof *conns);
    if (!conns) die("calloc");
    for (int i = 0; i < connections; i++) conns[i].fd = -1;
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) die("epoll_create1");
    open_all();
    if (!control) {
        round_and_report(messages_goal ? (duration > 0 ? duration : 60) : duration);
    } else {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) < 0) die("epoll_ctl stdin");
        for (;;) {
            loop_until(has_command, now() + 1e9);
            char *newline = memchr(line, '\n', line_len);
            if (!newline) break; /* EOF */
            *newline = 0;
            double seconds;
            if (sscanf(line, "echo %lf", &seconds) == 1 && seconds > 0) {
                round_and_report(seconds);
            } else if (!strcmp(line, "quit")) {
                break;
            } else {
                fprintf(stderr, "ws_echo_load: unknown command: %s\n", line);
            }
            size_t rest = line_len - (newline + 1 - line);
            memmove(line, newline + 1, rest);
            line_len = rest;
        }
    }
    static const unsigned char going_away[] = {0x03, 0xe8};
    for (int i = 0; i < connections; i++) {
        if (conns[i].state == OPEN) {
            send_frame(&conns[i], 0x8, going_away, 2);
            flush_queue(&conns[i]);
            if (conns[i].state == OPEN) close(conns[i].fd);
        }
    }
    return 0;
}
