// libsystemd for Swift: the sd-daemon and sd-journal APIs agg uses, plus one helper Swift cannot write tidily.
#ifndef AGG_CSYSTEMD_H
#define AGG_CSYSTEMD_H

#include <stddef.h>
#include <sys/uio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

/// The first inherited socket-activation descriptor (`SD_LISTEN_FDS_START`), as a value Swift imports.
static const int csystemd_listen_fds_start = SD_LISTEN_FDS_START;

/// Sends one sd_notify(3) datagram to an explicit AF_UNIX datagram socket: a filesystem path, or, with a leading
/// '@', a name in the abstract namespace (as `NOTIFY_SOCKET` spells it). Returns 0, or a negative errno.
/// sd_notify(3) only reads the address from the environment; this lets tests and callers pass it in.
int csystemd_notify_to(const char *socket_path, const char *state, size_t state_length);

#endif
