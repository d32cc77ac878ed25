#ifndef CSCTP_CHECKSUM_H
#define CSCTP_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/// Continues a CRC32c (Castagnoli, reflected polynomial 0x82F63B78) over `length` bytes.
/// Start with crc = 0xFFFFFFFF and invert the final value (RFC 9260 Appendix A).
/// Uses the SSE4.2 crc32 instruction when the CPU has it, slicing-by-8 tables otherwise.
uint32_t csctp_crc32c_update(uint32_t crc, const uint8_t *bytes, size_t length);

/// The portable slicing-by-8 implementation alone, for tests and benchmarks.
uint32_t csctp_crc32c_update_portable(uint32_t crc, const uint8_t *bytes, size_t length);

/// 1 when the hardware path is in use.
int csctp_crc32c_has_hardware(void);

#endif
