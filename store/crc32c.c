/*
** crc32c.c -- CRC-32C (Castagnoli), the checksum of Kafka's RecordBatch v2.
**
** Three implementations of one function: carry-less multiplication folding
** 256 bytes at a time (AVX-512 VPCLMULQDQ), the SSE4.2 crc32 instruction
** (eight bytes per instruction) and a portable slicing-by-8 table walk.
** Which one tk_crc32c uses is decided once, on first use, under
** pthread_once: the CPU is asked with __builtin_cpu_supports (which for
** AVX-512 also asks the OS, through XGETBV, whether it saves the registers),
** so one binary runs on any x86-64 and takes the fastest path it has. The tables (8 KiB)
** and folding constants are computed at the same time instead of being
** spelled out as literals.
**
** All three work on the reflected polynomial 0x82F63B78 with the usual ~0 initial
** value and final xor; the xors live in tk_crc32c so that a CRC can be
** continued across calls: tk_crc32c(tk_crc32c(0, a), b) is the CRC of a||b.
*/
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#include <nmmintrin.h>
#endif

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_table[8][256];
static uint32_t (*crc_impl)(uint32_t, const uint8_t *, size_t);
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

/* Slicing-by-8 on the inverted running CRC c. Bytes are assembled
** explicitly, so the result does not depend on the host's byte order. */
static uint32_t crc_sw(uint32_t c, const uint8_t *p, size_t n) {
  while (n >= 8) {
    uint32_t lo =
        c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
    uint32_t hi =
        (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
    c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^ crc_table[5][(lo >> 16) & 0xff] ^
        crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
        crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return c;
}

#if defined(__x86_64__)
/* The crc32 instruction on the inverted running CRC c: single bytes up to an
** 8-byte boundary, then whole quadwords (memcpy keeps the loads legal C). */
__attribute__((target("sse4.2"))) static uint32_t crc_hw1(uint32_t c, const uint8_t *p, size_t n) {
  while (n && ((uintptr_t)p & 7)) {
    c = _mm_crc32_u8(c, *p++);
    n--;
  }
  uint64_t c64 = c;
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    c64 = _mm_crc32_u64(c64, v);
    p += 8;
    n -= 8;
  }
  c = (uint32_t)c64;
  while (n--) c = _mm_crc32_u8(c, *p++);
  return c;
}

/* The crc32 instruction takes 3 cycles but can start one per cycle, so
** large buffers run three independent streams over adjacent blocks and
** join them: the CRC register update is linear, so
**   crc(c, A||B) = shift(crc(c, A), |B|) ^ crc(0, B)
** where shift(x, L) (x followed by L zero bytes) is a table lookup for a
** fixed block size. Blocks of 1 KiB take the bulk; what is left (a batch of
** 11 KiB would leave 2 KiB) goes in blocks of 128 bytes, so that at most
** 383 bytes run on one stream. Segment reads, appends and compaction
** checksum whole batches; this triples their CRC throughput. */
#define CRC_BIG 1024
#define CRC_SMALL 128
static uint32_t shift_big[4][256];   /* x -> crc(x, CRC_BIG zero bytes) */
static uint32_t shift_small[4][256]; /* x -> crc(x, CRC_SMALL zero bytes) */

static uint32_t shift_by(const uint32_t t[4][256], uint32_t c) {
  return t[0][c & 0xff] ^ t[1][(c >> 8) & 0xff] ^ t[2][(c >> 16) & 0xff] ^ t[3][c >> 24];
}

/* Three streams over blocks of `block` bytes while 3 blocks remain; p is
** 8-byte aligned. Advances *pp and *np. */
__attribute__((target("sse4.2"))) static inline uint32_t crc_3way(uint32_t c, const uint8_t **pp,
                                                                  size_t *np, size_t block,
                                                                  const uint32_t t[4][256]) {
  const uint8_t *p = *pp;
  size_t n = *np;
  while (n >= 3 * block) {
    uint64_t c0 = c, c1 = 0, c2 = 0;
    for (size_t i = 0; i < block; i += 8) {
      uint64_t v0, v1, v2;
      memcpy(&v0, p + i, 8);
      memcpy(&v1, p + block + i, 8);
      memcpy(&v2, p + 2 * block + i, 8);
      c0 = _mm_crc32_u64(c0, v0);
      c1 = _mm_crc32_u64(c1, v1);
      c2 = _mm_crc32_u64(c2, v2);
    }
    c = shift_by(t, shift_by(t, (uint32_t)c0) ^ (uint32_t)c1) ^ (uint32_t)c2;
    p += 3 * block;
    n -= 3 * block;
  }
  *pp = p;
  *np = n;
  return c;
}

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const uint8_t *p, size_t n) {
  if (n < 3 * CRC_SMALL) return crc_hw1(c, p, n);
  size_t head = (8 - ((uintptr_t)p & 7)) & 7;
  c = crc_hw1(c, p, head);
  p += head;
  n -= head;
  c = crc_3way(c, &p, &n, CRC_BIG, shift_big);
  c = crc_3way(c, &p, &n, CRC_SMALL, shift_small);
  return crc_hw1(c, p, n);
}

static void shift_init(void) {
  static const uint8_t zeros[CRC_BIG];
  for (int k = 0; k < 4; k++)
    for (uint32_t b = 0; b < 256; b++) {
      shift_big[k][b] = crc_hw1(b << (8 * k), zeros, CRC_BIG);
      shift_small[k][b] = crc_hw1(b << (8 * k), zeros, CRC_SMALL);
    }
}

/* Folding (compaction checks every batch it rewrites and re-seals it under
** a new CRC: at 100 B records that was a quarter of its rewriting thread's
** instructions, BENCHMARKS.md, "Where compaction's time goes"). The CRC is
** linear, and x^n mod P moves a bit n places on: four 512-bit accumulators
** hold 256 bytes still to be reduced, and each step carries every 128-bit
** lane 256 bytes on with two carry-less multiplications (its earlier and
** later 8 bytes by x^(2048+32) and x^(2048-32) mod P, bit-reflected as the
** CRC is) and xors in the next 256 bytes. At the end the first three
** accumulators are carried onto the last the same way (192, 128 and 64
** bytes on), and what is left 64 bytes at a time: its 64 bytes are then a
** message with the same CRC as everything folded into it, so the crc32
** instruction finishes them and the last 0-63 bytes: no reduction
** constants. 2-3x the crc32 streams' speed from 256 bytes on (a standalone
** test here: 44 against 15 GB/s at 1 KiB, 55 against 25 at 16 KiB). */
#define FOLD_BYTES 256
#define FOLD_MIN 256 /* below this, one stream of crc32 instructions */
/* fold_k[d]: x^(512(d+1)+32), x^(512(d+1)-32) mod P, reflected, << 1: 64(d+1) bytes on */
static uint64_t fold_k[4][2];

static uint64_t xpow_mod(unsigned n) { /* x^n mod P (P = 0x1EDC6F41, normal order) */
  uint64_t r = 1;
  while (n--) {
    r <<= 1;
    if (r & (1ull << 32)) r ^= 0x11EDC6F41ull;
  }
  return r;
}

static uint64_t reflect32(uint64_t v) {
  uint64_t r = 0;
  for (int i = 0; i < 32; i++)
    if (v & (1ull << i)) r |= 1ull << (31 - i);
  return r;
}

__attribute__((target("avx512f,vpclmulqdq,sse4.2"))) static uint32_t crc_fold(uint32_t c,
                                                                              const uint8_t *p,
                                                                              size_t n) {
  if (n < FOLD_MIN) return crc_hw(c, p, n);
  __m512i k[4];
  for (int d = 0; d < 4; d++)
    k[d] = _mm512_broadcast_i32x4(_mm_set_epi64x((long long)fold_k[d][1], (long long)fold_k[d][0]));
  /* the running CRC is the message's first four bytes xored with it */
  __m512i a0 =
      _mm512_xor_si512(_mm512_loadu_si512(p), _mm512_zextsi128_si512(_mm_cvtsi32_si128((int)c)));
  __m512i a1 = _mm512_loadu_si512(p + 64), a2 = _mm512_loadu_si512(p + 128),
          a3 = _mm512_loadu_si512(p + 192);
  p += FOLD_BYTES;
  n -= FOLD_BYTES;
  while (n >= FOLD_BYTES) {
#define FOLD(a, kd, b)                                                                             \
  _mm512_ternarylogic_epi64(_mm512_clmulepi64_epi128(a, kd, 0x00),                                 \
                            _mm512_clmulepi64_epi128(a, kd, 0x11), b, 0x96) /* ^ ^ */
    a0 = FOLD(a0, k[3], _mm512_loadu_si512(p));
    a1 = FOLD(a1, k[3], _mm512_loadu_si512(p + 64));
    a2 = FOLD(a2, k[3], _mm512_loadu_si512(p + 128));
    a3 = FOLD(a3, k[3], _mm512_loadu_si512(p + 192));
    p += FOLD_BYTES;
    n -= FOLD_BYTES;
  }
  a3 = FOLD(a0, k[2], FOLD(a1, k[1], FOLD(a2, k[0], a3)));
  for (; n >= 64; p += 64, n -= 64) a3 = FOLD(a3, k[0], _mm512_loadu_si512(p));
#undef FOLD
  uint8_t rest[64] __attribute__((aligned(64)));
  _mm512_store_si512(rest, a3);
  return crc_hw1(crc_hw1(0, rest, 64), p, n);
}
#endif

static void crc_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
    crc_table[0][i] = c;
  }
  for (int i = 0; i < 256; i++)
    for (int k = 1; k < 8; k++)
      crc_table[k][i] = (crc_table[k - 1][i] >> 8) ^ crc_table[0][crc_table[k - 1][i] & 0xff];
  crc_impl = crc_sw;
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("sse4.2")) {
    shift_init();
    crc_impl = crc_hw;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("vpclmulqdq")) {
      for (unsigned d = 0; d < 4; d++) {
        fold_k[d][0] = reflect32(xpow_mod(512 * (d + 1) + 32)) << 1;
        fold_k[d][1] = reflect32(xpow_mod(512 * (d + 1) - 32)) << 1;
      }
      crc_impl = crc_fold;
    }
  }
#endif
}

uint32_t tk_crc32c(uint32_t crc, const void *p, size_t n) {
  pthread_once(&crc_once, crc_init);
  return ~crc_impl(~crc, (const uint8_t *)p, n);
}

uint32_t tk_crc32c_sw(uint32_t crc, const void *p, size_t n) {
  pthread_once(&crc_once, crc_init);
  return ~crc_sw(~crc, (const uint8_t *)p, n);
}

uint32_t tk_crc32c_path(int path, uint32_t crc, const void *p, size_t n) {
  pthread_once(&crc_once, crc_init);
  uint32_t (*f)(uint32_t, const uint8_t *, size_t) = crc_sw;
#if defined(__x86_64__)
  if (path >= 1 && crc_impl != crc_sw) f = crc_hw;
  if (path >= 2 && crc_impl == crc_fold) f = crc_fold;
#endif
  return ~f(~crc, (const uint8_t *)p, n);
}
