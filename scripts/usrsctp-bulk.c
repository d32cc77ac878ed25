/*
 * Bulk transfer between two usrsctp endpoints over UDP encapsulation: the baseline of scripts/bench-loopback.sh.
 *
 *   usrsctp-bulk recv LOCAL_UDP SCTP_PORT
 *   usrsctp-bulk send LOCAL_UDP REMOTE_UDP REMOTE_IP SCTP_PORT BYTES MESSAGE_SIZE
 *
 * One-to-one (SOCK_STREAM) blocking sockets, one stream, no debug output. The receiver counts bytes until the
 * sender's SHUTDOWN; the sender writes BYTES in messages of MESSAGE_SIZE, shuts down and waits for the
 * association to end. Each prints "bytes seconds" for its own part to stdout.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <usrsctp.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "usrsctp-bulk: %s: %s\n", what, strerror(errno));
    exit(1);
}

/* Large buffers on both sides, like the 4 MiB windows of the Swift engine. */
static void set_buffers(struct socket *sock) {
    int size = 4 * 1024 * 1024;
    if (usrsctp_setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) < 0) die("SO_RCVBUF");
    if (usrsctp_setsockopt(sock, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) < 0) die("SO_SNDBUF");
}

static void set_remote_udp_port(struct socket *sock, uint16_t port) {
    struct sctp_udpencaps encaps;
    memset(&encaps, 0, sizeof(encaps));
    encaps.sue_address.ss_family = AF_INET;
    encaps.sue_port = htons(port);
    if (usrsctp_setsockopt(sock, IPPROTO_SCTP, SCTP_REMOTE_UDP_ENCAPS_PORT, &encaps, sizeof(encaps)) < 0)
        die("SCTP_REMOTE_UDP_ENCAPS_PORT");
}

static int receive(uint16_t sctp_port) {
    struct socket *listener = usrsctp_socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP, NULL, NULL, 0, NULL);
    if (!listener) die("usrsctp_socket");
    set_buffers(listener);
    struct sockaddr_in local;
    memset(&local, 0, sizeof(local));
    local.sin_family = AF_INET;
    local.sin_port = htons(sctp_port);
    local.sin_addr.s_addr = htonl(INADDR_ANY);
    if (usrsctp_bind(listener, (struct sockaddr *)&local, sizeof(local)) < 0) die("usrsctp_bind");
    if (usrsctp_listen(listener, 1) < 0) die("usrsctp_listen");
    struct socket *sock = usrsctp_accept(listener, NULL, NULL);
    if (!sock) die("usrsctp_accept");
    double start = now();
    static char buffer[1 << 16];
    unsigned long long total = 0;
    for (;;) {
        struct sctp_rcvinfo info;
        socklen_t infolen = sizeof(info), fromlen = 0;
        unsigned int infotype = 0;
        int flags = 0;
        ssize_t n = usrsctp_recvv(sock, buffer, sizeof(buffer), NULL, &fromlen, &info, &infolen, &infotype, &flags);
        if (n < 0) die("usrsctp_recvv");
        if (n == 0) break;
        if (!(flags & MSG_NOTIFICATION)) total += (unsigned long long)n;
    }
    printf("%llu %.6f\n", total, now() - start);
    usrsctp_close(sock);
    usrsctp_close(listener);
    return 0;
}

static int send_bulk(uint16_t remote_udp, const char *remote_ip, uint16_t sctp_port, unsigned long long bytes,
                     size_t message_size) {
    struct socket *sock = usrsctp_socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP, NULL, NULL, 0, NULL);
    if (!sock) die("usrsctp_socket");
    set_buffers(sock);
    set_remote_udp_port(sock, remote_udp);
    struct sockaddr_in remote;
    memset(&remote, 0, sizeof(remote));
    remote.sin_family = AF_INET;
    remote.sin_port = htons(sctp_port);
    if (inet_pton(AF_INET, remote_ip, &remote.sin_addr) != 1) die("inet_pton");
    double start = now();
    if (usrsctp_connect(sock, (struct sockaddr *)&remote, sizeof(remote)) < 0) die("usrsctp_connect");
    char *message = calloc(1, message_size);
    struct sctp_sndinfo info;
    memset(&info, 0, sizeof(info));
    unsigned long long sent = 0;
    while (sent < bytes) {
        size_t length = bytes - sent < message_size ? (size_t)(bytes - sent) : message_size;
        ssize_t n = usrsctp_sendv(sock, message, length, NULL, 0, &info, sizeof(info), SCTP_SENDV_SNDINFO, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("usrsctp_sendv");
        }
        sent += (unsigned long long)n;
    }
    /* Graceful shutdown: SHUTDOWN goes out once everything is acknowledged; recv returns 0 when it completes. */
    if (usrsctp_shutdown(sock, SHUT_WR) < 0) die("usrsctp_shutdown");
    char scratch[256];
    for (;;) {
        socklen_t fromlen = 0, infolen = 0;
        unsigned int infotype = 0;
        int flags = 0;
        ssize_t n = usrsctp_recvv(sock, scratch, sizeof(scratch), NULL, &fromlen, NULL, &infolen, &infotype, &flags);
        if (n <= 0) break;
    }
    printf("%llu %.6f\n", sent, now() - start);
    usrsctp_close(sock);
    free(message);
    return 0;
}

/* No debug printf is passed to usrsctp_init; where the library has debug support, switch it off as well. */
static void quiet(void) {
#ifdef SCTP_DEBUG
    usrsctp_sysctl_set_sctp_debug_on(SCTP_DEBUG_NONE);
#endif
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "recv") == 0) {
        usrsctp_init((uint16_t)atoi(argv[2]), NULL, NULL);
        quiet();
        int rc = receive((uint16_t)atoi(argv[3]));
        while (usrsctp_finish() != 0) usleep(10000);
        return rc;
    }
    if (argc == 8 && strcmp(argv[1], "send") == 0) {
        usrsctp_init((uint16_t)atoi(argv[2]), NULL, NULL);
        quiet();
        int rc = send_bulk((uint16_t)atoi(argv[3]), argv[4], (uint16_t)atoi(argv[5]), strtoull(argv[6], NULL, 10),
                           (size_t)atoi(argv[7]));
        while (usrsctp_finish() != 0) usleep(10000);
        return rc;
    }
    fprintf(stderr, "usage: usrsctp-bulk recv LOCAL_UDP SCTP_PORT\n"
                    "       usrsctp-bulk send LOCAL_UDP REMOTE_UDP REMOTE_IP SCTP_PORT BYTES MESSAGE_SIZE\n");
    return 2;
}
