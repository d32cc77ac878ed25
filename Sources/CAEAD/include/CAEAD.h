#ifndef CAEAD_H
#define CAEAD_H

#include <stddef.h>
#include <stdint.h>

/// One direction's ChaCha20-Poly1305 key (RFC 8439), opaque. Made once per session key; safe to use from one thread.
typedef struct caead_key caead_key;

/// A key for 32 bytes of key material, or NULL when the library refuses it.
caead_key *caead_new(const uint8_t *key, size_t key_length);

void caead_free(caead_key *key);

/// Encrypts `length` bytes at `in` into `out` (which may equal `in`) and writes the 16-byte tag right after them,
/// authenticating `ad`. The nonce is four zero bytes and `counter` big-endian. `out` must have room for
/// `length + 16` bytes. Returns 1 on success, 0 otherwise.
int caead_seal(const caead_key *key, uint64_t counter, uint8_t *out, const uint8_t *in, size_t length,
               const uint8_t *ad, size_t ad_length);

/// Checks and decrypts `length` bytes at `in` (ciphertext then the 16-byte tag) into `out` (which may equal `in`),
/// `length - 16` bytes; nothing is written past them. Returns 1 when the tag is right, 0 otherwise (then `out`'s
/// `length - 16` bytes are zeros).
int caead_open(const caead_key *key, uint64_t counter, uint8_t *out, const uint8_t *in, size_t length,
               const uint8_t *ad, size_t ad_length);

#endif
