// CRC32c (Castagnoli) for SCTP, RFC 9260 Appendix A.
// Hardware: the SSE4.2 crc32 instruction, three interleaved streams hide its 3-cycle latency.
// Portable: slicing-by-8 over tables built once at first use.
#include "CSCTPChecksum.h"

#include <string.h>

#define POLY 0x82F63B78u

static uint32_t table[8][256];
static int table_ready;

static void build_table(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = table[0][n];
        for (int k = 1; k < 8; k++) {
            c = table[0][c & 0xff] ^ (c >> 8);
            table[k][n] = c;
        }
    }
    __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

uint32_t csctp_crc32c_update_portable(uint32_t crc, const uint8_t *p, size_t n) {
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) build_table();
    while (n && ((uintptr_t)p & 7)) {
        crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        n--;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w);
#endif
        w ^= crc;
        crc = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
              table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
              table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--) crc = table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__)
#include <cpuid.h>

// Shifts a CRC forward over `bytes` zero bytes: multiply by x^(8*bytes) mod P, bit by bit over a precomputed
// table of x^(2^k). Used to combine the three interleaved streams.
static uint32_t gf_multiply(uint32_t a, uint32_t b) {
    uint32_t product = 0;
    for (int i = 0; i < 32; i++) {
        if (b & 0x80000000u) product ^= a;
        b <<= 1;
        a = (a & 1) ? (a >> 1) ^ POLY : a >> 1;
    }
    return product;
}

static uint32_t x_pow_8n(size_t n) {
    // x^(8n) mod P in reflected form; x^0 is 0x80000000.
    uint32_t result = 0x80000000u;
    uint32_t power = 0x00800000u;  // x^8
    while (n) {
        if (n & 1) result = gf_multiply(result, power);
        power = gf_multiply(power, power);
        n >>= 1;
    }
    return result;
}

#define BLOCK 4096
static uint32_t shift_block;
static int shift_ready;

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const uint8_t *p, size_t n) {
    uint64_t c0 = crc;
    while (n && ((uintptr_t)p & 7)) {
        c0 = __builtin_ia32_crc32qi((uint32_t)c0, *p++);
        n--;
    }
    if (!__atomic_load_n(&shift_ready, __ATOMIC_ACQUIRE)) {
        shift_block = x_pow_8n(BLOCK);
        __atomic_store_n(&shift_ready, 1, __ATOMIC_RELEASE);
    }
    while (n >= 3 * BLOCK) {
        uint64_t c1 = 0, c2 = 0;
        const uint8_t *a = p, *b = p + BLOCK, *d = p + 2 * BLOCK;
        for (size_t i = 0; i < BLOCK; i += 8) {
            uint64_t wa, wb, wd;
            memcpy(&wa, a + i, 8);
            memcpy(&wb, b + i, 8);
            memcpy(&wd, d + i, 8);
            c0 = __builtin_ia32_crc32di(c0, wa);
            c1 = __builtin_ia32_crc32di(c1, wb);
            c2 = __builtin_ia32_crc32di(c2, wd);
        }
        c0 = gf_multiply((uint32_t)c0, shift_block) ^ c1;
        c0 = gf_multiply((uint32_t)c0, shift_block) ^ c2;
        p += 3 * BLOCK;
        n -= 3 * BLOCK;
    }
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c0 = __builtin_ia32_crc32di(c0, w);
        p += 8;
        n -= 8;
    }
    while (n--) c0 = __builtin_ia32_crc32qi((uint32_t)c0, *p++);
    return (uint32_t)c0;
}

static int has_sse42(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return (c & bit_SSE4_2) != 0;
}

static int hardware = -1;

int csctp_crc32c_has_hardware(void) {
    int h = __atomic_load_n(&hardware, __ATOMIC_RELAXED);
    if (h < 0) {
        h = has_sse42();
        __atomic_store_n(&hardware, h, __ATOMIC_RELAXED);
    }
    return h;
}

uint32_t csctp_crc32c_update(uint32_t crc, const uint8_t *p, size_t n) {
    if (csctp_crc32c_has_hardware()) return crc_hw(crc, p, n);
    return csctp_crc32c_update_portable(crc, p, n);
}

#else

int csctp_crc32c_has_hardware(void) { return 0; }

uint32_t csctp_crc32c_update(uint32_t crc, const uint8_t *p, size_t n) {
    return csctp_crc32c_update_portable(crc, p, n);
}

#endif
