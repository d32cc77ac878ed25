#include "CSystemd.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int csystemd_notify_to(const char *socket_path, const char *state, size_t state_length) {
    struct sockaddr_un address;
    memset(&address, 0, sizeof(address));
    address.sun_family = AF_UNIX;

    size_t path_length = strlen(socket_path);
    if (path_length == 0 || path_length >= sizeof(address.sun_path)) return -EINVAL;
    if (socket_path[0] != '/' && socket_path[0] != '@') return -EAFNOSUPPORT;
    memcpy(address.sun_path, socket_path, path_length);
    // An abstract name starts with a NUL byte and is exactly as long as given, with no terminator.
    if (address.sun_path[0] == '@') address.sun_path[0] = '\0';
    socklen_t address_length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_length);
    if (socket_path[0] == '/') address_length += 1;

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    ssize_t sent = sendto(fd, state, state_length, MSG_NOSIGNAL, (const struct sockaddr *)&address, address_length);
    int result = sent < 0 ? -errno : ((size_t)sent == state_length ? 0 : -EMSGSIZE);
    close(fd);
    return result;
}
