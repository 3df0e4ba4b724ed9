/*
** fuzz.h -- the entry points libFuzzer calls, declared once for the fuzz
** targets here (libFuzzer ships no header for them).
*/
#ifndef TAKHIN_FUZZ_H
#define TAKHIN_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* Optional: once, before the first input. */
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* One input; returns 0. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
