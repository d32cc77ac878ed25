// Instructions per sealed datagram for three ways of sealing an SCTP packet whose DATA payload lies elsewhere
// (issue 14: could the server seal without first copying the payload into the packet?). Built and run under
// callgrind by scripts/seal-gather-bench.sh against the BoringSSL objects of a release build:
//   c: copy headers and payload into one packet, then EVP_AEAD_CTX_seal (what the daemons do);
//   s: EVP_AEAD_CTX_seal_scatter with the headers as `in` and the payload as `extra_in`;
//   g: a gather seal built from CRYPTO_chacha_20 and CRYPTO_poly1305 (RFC 8439 §2.8), the payload read in place.
// Every mode first checks that its output equals mode c's.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
typedef struct evp_aead_st EVP_AEAD;
typedef struct evp_aead_ctx_st EVP_AEAD_CTX;
extern const EVP_AEAD *CCryptoBoringSSL_EVP_aead_chacha20_poly1305(void);
extern EVP_AEAD_CTX *CCryptoBoringSSL_EVP_AEAD_CTX_new(const EVP_AEAD *, const uint8_t *, size_t, size_t);
extern int CCryptoBoringSSL_EVP_AEAD_CTX_seal(const EVP_AEAD_CTX *, uint8_t *, size_t *, size_t, const uint8_t *, size_t,
    const uint8_t *, size_t, const uint8_t *, size_t);
extern int CCryptoBoringSSL_EVP_AEAD_CTX_seal_scatter(const EVP_AEAD_CTX *, uint8_t *, uint8_t *, size_t *, size_t,
    const uint8_t *, size_t, const uint8_t *, size_t, const uint8_t *, size_t, const uint8_t *, size_t);
extern void CCryptoBoringSSL_CRYPTO_chacha_20(uint8_t *out, const uint8_t *in, size_t in_len, const uint8_t key[32],
    const uint8_t nonce[12], uint32_t counter);
typedef uint8_t poly1305_state[512];
extern void CCryptoBoringSSL_CRYPTO_poly1305_init(poly1305_state *, const uint8_t key[32]);
extern void CCryptoBoringSSL_CRYPTO_poly1305_update(poly1305_state *, const uint8_t *, size_t);
extern void CCryptoBoringSSL_CRYPTO_poly1305_finish(poly1305_state *, uint8_t mac[16]);

static uint8_t key[32] = {1, 2, 3};
static uint8_t nonce[12] = {0};

// The headers then the tail, gathered: the ciphertext written contiguous at out, the tag after it. The first
// keystream block covers the headers and the tail's first bytes (copied, at most 63), the rest is encrypted from
// the tail in place.
static void gather_seal(uint8_t *out, const uint8_t *head, size_t hl, const uint8_t *tail, size_t tl,
                        const uint8_t *ad, size_t adl) {
    size_t total = hl + tl;
    size_t prefix = (hl + 63) / 64 * 64;
    if (prefix > total) prefix = total;
    memcpy(out, head, hl);
    memcpy(out + hl, tail, prefix - hl);
    CCryptoBoringSSL_CRYPTO_chacha_20(out, out, prefix, key, nonce, 1);
    if (total > prefix)
        CCryptoBoringSSL_CRYPTO_chacha_20(out + prefix, tail + (prefix - hl), total - prefix, key, nonce,
                                          1 + (uint32_t)(prefix / 64));
    uint8_t otk[32] = {0};
    CCryptoBoringSSL_CRYPTO_chacha_20(otk, otk, 32, key, nonce, 0);
    static const uint8_t zeros[16] = {0};
    poly1305_state st;
    CCryptoBoringSSL_CRYPTO_poly1305_init(&st, otk);
    CCryptoBoringSSL_CRYPTO_poly1305_update(&st, ad, adl);
    if (adl % 16) CCryptoBoringSSL_CRYPTO_poly1305_update(&st, zeros, 16 - adl % 16);
    CCryptoBoringSSL_CRYPTO_poly1305_update(&st, out, total);
    if (total % 16) CCryptoBoringSSL_CRYPTO_poly1305_update(&st, zeros, 16 - total % 16);
    uint8_t lens[16];
    for (int i = 0; i < 8; i++) { lens[i] = (uint8_t)((uint64_t)adl >> (8 * i)); lens[8 + i] = (uint8_t)((uint64_t)total >> (8 * i)); }
    CCryptoBoringSSL_CRYPTO_poly1305_update(&st, lens, 16);
    CCryptoBoringSSL_CRYPTO_poly1305_finish(&st, out + total);
}

__attribute__((noinline)) void run_contig(const EVP_AEAD_CTX *ctx, uint8_t *pkt, uint8_t *out, const uint8_t *hd,
                                          size_t hl, const uint8_t *tail, size_t tl, int n) {
    for (int i = 0; i < n; i++) {
        memcpy(pkt, hd, hl);
        memcpy(pkt + hl, tail, tl);
        size_t w;
        CCryptoBoringSSL_EVP_AEAD_CTX_seal(ctx, out + 9, &w, hl + tl + 16, nonce, 12, pkt, hl + tl, out, 9);
    }
}
__attribute__((noinline)) void run_gather(uint8_t *out, const uint8_t *hd, size_t hl, const uint8_t *tail, size_t tl,
                                          int n) {
    for (int i = 0; i < n; i++) gather_seal(out + 9, hd, hl, tail, tl, out, 9);
}
__attribute__((noinline)) void run_scatter(const EVP_AEAD_CTX *ctx, uint8_t *out, const uint8_t *hd, size_t hl,
                                           const uint8_t *tail, size_t tl, int n) {
    for (int i = 0; i < n; i++) {
        size_t w;
        CCryptoBoringSSL_EVP_AEAD_CTX_seal_scatter(ctx, out + 9, out + 9 + hl, &w, tl + 16, nonce, 12, hd, hl, tail,
                                                   tl, out, 9);
    }
}

int main(int argc, char **argv) {
    const EVP_AEAD_CTX *ctx =
        CCryptoBoringSSL_EVP_AEAD_CTX_new(CCryptoBoringSSL_EVP_aead_chacha20_poly1305(), key, 32, 16);
    size_t hl = 28, tl = argc > 2 ? atoi(argv[2]) : 1408;
    uint8_t hd[64], tail[2048], pkt[2048], out1[2048], out2[2048], out3[2048];
    for (int i = 0; i < 64; i++) hd[i] = i;
    for (int i = 0; i < 2048; i++) tail[i] = i * 7;
    memset(out1, 0x55, 9); memset(out2, 0x55, 9); memset(out3, 0x55, 9);
    run_contig(ctx, pkt, out1, hd, hl, tail, tl, 1);
    run_gather(out2, hd, hl, tail, tl, 1);
    run_scatter(ctx, out3, hd, hl, tail, tl, 1);
    if (memcmp(out1, out2, 9 + hl + tl + 16) != 0 || memcmp(out1, out3, 9 + hl + tl + 16) != 0) {
        fprintf(stderr, "the three seals differ\n");
        return 1;
    }
    int n = argc > 3 ? atoi(argv[3]) : 10000;
    if (argv[1][0] == 'c') run_contig(ctx, pkt, out1, hd, hl, tail, tl, n);
    if (argv[1][0] == 'g') run_gather(out2, hd, hl, tail, tl, n);
    if (argv[1][0] == 's') run_scatter(ctx, out3, hd, hl, tail, tl, n);
    return 0;
}
