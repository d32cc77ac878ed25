// The systemd service protocols agg speaks, written against the kernel only (no libsystemd at build or run time):
// the notify datagram (sd_notify(3)), the journal's native datagram (systemd-journald.service(8), "Native Protocol")
// and the socket-activation checks (sd_is_socket(3)). Swift builds the messages; this file only moves bytes.
#ifndef AGG_CSYSTEMD_H
#define AGG_CSYSTEMD_H

#include <stddef.h>

/// The first inherited socket-activation descriptor (SD_LISTEN_FDS_START in sd-daemon.h, fixed by the protocol).
static const int csystemd_listen_fds_start = 3;

/// Sends one sd_notify(3) datagram to an AF_UNIX datagram socket: a filesystem path, or, with a leading '@', a name
/// in the abstract namespace (as `NOTIFY_SOCKET` spells it). Returns 0, or a negative errno.
int csystemd_notify_to(const char *socket_path, const char *state, size_t state_length);

/// Sends one journal entry, already encoded in the native protocol, to journald's socket at `socket_path`
/// (/run/systemd/journal/socket). An entry too large for one datagram goes as a sealed memfd passed with
/// SCM_RIGHTS, as the protocol allows. Returns 0, or a negative errno.
int csystemd_journal_send_to(const char *socket_path, const void *entry, size_t entry_length);

/// 1 when `fd` is a stream socket in the listening state, 0 when it is something else, or a negative errno.
int csystemd_is_listening_stream_socket(int fd);

#endif
