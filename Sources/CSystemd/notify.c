#define _GNU_SOURCE
#include "CSystemd.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/// Fills `address` from a path or an '@' abstract name; returns the address length, or a negative errno.
static int unix_address(const char *socket_path, struct sockaddr_un *address, socklen_t *length) {
    memset(address, 0, sizeof(*address));
    address->sun_family = AF_UNIX;
    size_t path_length = strlen(socket_path);
    if (path_length == 0 || path_length >= sizeof(address->sun_path)) return -EINVAL;
    if (socket_path[0] != '/' && socket_path[0] != '@') return -EAFNOSUPPORT;
    memcpy(address->sun_path, socket_path, path_length);
    // An abstract name starts with a NUL byte and is exactly as long as given, with no terminator.
    if (address->sun_path[0] == '@') address->sun_path[0] = '\0';
    *length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_length);
    if (socket_path[0] == '/') *length += 1;
    return 0;
}

int csystemd_notify_to(const char *socket_path, const char *state, size_t state_length) {
    struct sockaddr_un address;
    socklen_t address_length;
    int status = unix_address(socket_path, &address, &address_length);
    if (status < 0) return status;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    ssize_t sent = sendto(fd, state, state_length, MSG_NOSIGNAL, (const struct sockaddr *)&address, address_length);
    int result = sent < 0 ? -errno : ((size_t)sent == state_length ? 0 : -EMSGSIZE);
    close(fd);
    return result;
}

/// Passes a large entry as a sealed memory file: journald reads the whole entry from the descriptor.
static int journal_send_memfd(int fd, const struct sockaddr_un *address, socklen_t address_length, const void *entry,
                              size_t entry_length) {
    int memfd = memfd_create("agg-journal", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (memfd < 0) return -errno;
    const char *bytes = entry;
    size_t written = 0;
    while (written < entry_length) {
        ssize_t n = write(memfd, bytes + written, entry_length - written);
        if (n < 0) {
            if (errno == EINTR) continue;
            int error = -errno;
            close(memfd);
            return error;
        }
        written += (size_t)n;
    }
    // journald refuses an unsealed memfd: the entry must not change under it.
    if (fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
        int error = -errno;
        close(memfd);
        return error;
    }
    union {
        struct cmsghdr header;
        char space[CMSG_SPACE(sizeof(int))];
    } control;
    memset(&control, 0, sizeof(control));
    struct msghdr message;
    memset(&message, 0, sizeof(message));
    message.msg_name = (void *)address;
    message.msg_namelen = address_length;
    message.msg_control = &control;
    message.msg_controllen = sizeof(control);
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&message);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &memfd, sizeof(int));
    int result = sendmsg(fd, &message, MSG_NOSIGNAL) < 0 ? -errno : 0;
    close(memfd);
    return result;
}

int csystemd_journal_send_to(const char *socket_path, const void *entry, size_t entry_length) {
    struct sockaddr_un address;
    socklen_t address_length;
    int status = unix_address(socket_path, &address, &address_length);
    if (status < 0) return status;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int result = 0;
    if (sendto(fd, entry, entry_length, MSG_NOSIGNAL, (const struct sockaddr *)&address, address_length) < 0) {
        result = -errno;
        if (result == -EMSGSIZE || result == -ENOBUFS)
            result = journal_send_memfd(fd, &address, address_length, entry, entry_length);
    }
    close(fd);
    return result;
}

int csystemd_is_listening_stream_socket(int fd) {
    struct stat status;
    if (fstat(fd, &status) < 0) return -errno;
    if (!S_ISSOCK(status.st_mode)) return 0;
    int type = 0;
    socklen_t length = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) < 0) return -errno;
    if (type != SOCK_STREAM) return 0;
    int accepting = 0;
    length = sizeof(accepting);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &length) < 0) return -errno;
    return accepting ? 1 : 0;
}
