/*
** path_sql.c -- the sql path: takhin through SQL on its loaded SQLite
** extension. Not written yet, so the path reports itself unavailable and the
** suite prints why instead of numbers: the extension is not built, or (once
** it is, at TAKHIN_BENCH_EXTENSION, which bench/CMakeLists.txt points at the
** build's takhin.so) the bench does not drive it yet.
**
** To add it: open a SQLite connection, load the extension, and fill the path
** table (path.h) as path_sqlite.c does, with the same statements aimed at the
** extension's tables:
**   produce      INSERT, a batch inside one transaction
**   read_range   SELECT with the offset range pushed down
**   read_one     SELECT ... WHERE offset = ?
**   segments     the extension's segment listing
** Every benchmark then measures sql too, and the ratio report gains sql/api.
*/
#include <stddef.h>
#include <unistd.h>

#include "bench.h"

static const char *sql_unavailable(void) {
#ifdef TAKHIN_BENCH_EXTENSION
  if (access(TAKHIN_BENCH_EXTENSION, R_OK) == 0)
    return "sql path not available yet: the bench does not drive the takhin SQLite extension"
           " (" TAKHIN_BENCH_EXTENSION ") yet";
#endif
  return "sql path not available yet: the takhin SQLite extension is not built";
}

const bench_path bench_path_sql = {
    .name = "sql",
    .unavailable = sql_unavailable,
};
