/*
** crc32c.h -- CRC-32C (Castagnoli), the checksum of Kafka's RecordBatch v2.
** Uses carry-less multiplication (AVX-512 VPCLMULQDQ) on long buffers and
** the SSE4.2 crc32 instruction when the CPU has them, else slicing-by-8.
*/
#ifndef TAKHIN_CRC32C_H
#define TAKHIN_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of n bytes at p, continuing from crc (0 to start). */
uint32_t tk_crc32c(uint32_t crc, const void *p, size_t n);

/* The same CRC always computed by the portable table path, whatever the CPU;
** for tests that check the two paths agree. */
uint32_t tk_crc32c_sw(uint32_t crc, const void *p, size_t n);

/* The same CRC by one path, for tests that hold each to the table walk:
** 0 the table walk, 1 the crc32 instruction's streams, 2 folding; a path
** the CPU lacks falls back to the next slower one. */
uint32_t tk_crc32c_path(int path, uint32_t crc, const void *p, size_t n);

#endif /* TAKHIN_CRC32C_H */
