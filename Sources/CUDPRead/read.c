#define _GNU_SOURCE
#include <stddef.h>
#include <sys/socket.h>

#include "CUDPRead.h"

_Static_assert(sizeof(struct cudpread_message) == sizeof(struct mmsghdr), "struct mmsghdr's layout");
_Static_assert(offsetof(struct cudpread_message, length) == offsetof(struct mmsghdr, msg_len), "msg_len's offset");

int cudpread_recvmmsg(int descriptor, struct cudpread_message *messages, unsigned int count, int flags) {
    return recvmmsg(descriptor, (struct mmsghdr *)messages, count, flags, NULL);
}
