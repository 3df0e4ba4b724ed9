/*
** table.h -- the terminal's compact per-family tables (table.c).
*/
#ifndef TAKHIN_BENCH_TABLE_H
#define TAKHIN_BENCH_TABLE_H

#include <stdio.h>

#include "bench.h"

/* The table of def's results so far (nothing when none, or no layout). */
void table_print(FILE *f, const bench_results *rs, const bench_def *def);

#endif /* TAKHIN_BENCH_TABLE_H */
