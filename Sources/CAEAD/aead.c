// ChaCha20-Poly1305 over caller-owned memory, for the datagram layer's per-packet sealing: swift-crypto's API takes
// and returns Foundation Data, which costs two allocations and two copies per datagram each way. This calls the
// BoringSSL that swift-crypto (a dependency of the Proxy target) already links into every binary. swift-crypto
// builds BoringSSL with its symbols prefixed (CCryptoBoringSSL_) and does not export its headers as a product, so
// the few functions used are declared here with the signatures of BoringSSL's <openssl/aead.h>; Package.swift pins
// swift-crypto's exact version.
#include "CAEAD.h"

#include <string.h>

typedef struct evp_aead_st EVP_AEAD;
typedef struct evp_aead_ctx_st EVP_AEAD_CTX;

extern const EVP_AEAD *CCryptoBoringSSL_EVP_aead_chacha20_poly1305(void);
extern EVP_AEAD_CTX *CCryptoBoringSSL_EVP_AEAD_CTX_new(const EVP_AEAD *aead, const uint8_t *key, size_t key_len,
                                                        size_t tag_len);
extern void CCryptoBoringSSL_EVP_AEAD_CTX_free(EVP_AEAD_CTX *ctx);
extern int CCryptoBoringSSL_EVP_AEAD_CTX_seal(const EVP_AEAD_CTX *ctx, uint8_t *out, size_t *out_len,
                                              size_t max_out_len, const uint8_t *nonce, size_t nonce_len,
                                              const uint8_t *in, size_t in_len, const uint8_t *ad, size_t ad_len);
extern int CCryptoBoringSSL_EVP_AEAD_CTX_open(const EVP_AEAD_CTX *ctx, uint8_t *out, size_t *out_len,
                                              size_t max_out_len, const uint8_t *nonce, size_t nonce_len,
                                              const uint8_t *in, size_t in_len, const uint8_t *ad, size_t ad_len);

enum { tag_length = 16, nonce_length = 12 };

static void make_nonce(uint8_t nonce[nonce_length], uint64_t counter) {
    memset(nonce, 0, 4);
    for (int i = 0; i < 8; i++) nonce[4 + i] = (uint8_t)(counter >> (56 - 8 * i));
}

caead_key *caead_new(const uint8_t *key, size_t key_length) {
    return (caead_key *)CCryptoBoringSSL_EVP_AEAD_CTX_new(CCryptoBoringSSL_EVP_aead_chacha20_poly1305(), key,
                                                          key_length, tag_length);
}

void caead_free(caead_key *key) {
    if (key) CCryptoBoringSSL_EVP_AEAD_CTX_free((EVP_AEAD_CTX *)key);
}

int caead_seal(const caead_key *key, uint64_t counter, uint8_t *out, const uint8_t *in, size_t length,
               const uint8_t *ad, size_t ad_length) {
    uint8_t nonce[nonce_length];
    make_nonce(nonce, counter);
    size_t written = 0;
    return CCryptoBoringSSL_EVP_AEAD_CTX_seal((const EVP_AEAD_CTX *)key, out, &written, length + tag_length, nonce,
                                              nonce_length, in, length, ad, ad_length) &&
           written == length + tag_length;
}

int caead_open(const caead_key *key, uint64_t counter, uint8_t *out, const uint8_t *in, size_t length,
               const uint8_t *ad, size_t ad_length) {
    if (length < tag_length) return 0;
    uint8_t nonce[nonce_length];
    make_nonce(nonce, counter);
    size_t written = 0;
    // The output room is exactly the plaintext's length: on failure BoringSSL zeroes all of the room it was told
    // of, so telling it `length` (ciphertext and tag) would clear 16 bytes past the caller's buffer.
    return CCryptoBoringSSL_EVP_AEAD_CTX_open((const EVP_AEAD_CTX *)key, out, &written, length - tag_length, nonce,
                                              nonce_length, in, length, ad, ad_length) &&
           written == length - tag_length;
}
