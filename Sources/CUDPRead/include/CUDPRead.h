// recvmmsg(2) for the UDP driver's own reads (AggTransport's DatagramReader): Swift's Glibc module leaves out
// struct mmsghdr and recvmmsg, which need _GNU_SOURCE.
#ifndef AGG_CUDPREAD_H
#define AGG_CUDPREAD_H

#include <sys/socket.h>

/// One message of a batch, laid out as struct mmsghdr: the message header and the bytes the kernel put in it.
struct cudpread_message {
    struct msghdr header;
    unsigned int length;
};

/// recvmmsg(2) without a timeout: the number of messages read, or -1 with errno set.
int cudpread_recvmmsg(int descriptor, struct cudpread_message *messages, unsigned int count, int flags);

#endif
