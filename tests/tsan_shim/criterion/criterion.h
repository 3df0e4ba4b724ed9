/*
** tsan_shim/criterion/criterion.h -- a minimal stand-in for Criterion, used
** only by the ThreadSanitizer build of the threaded tests.
**
** Why: Criterion cannot start under TSan (its "inheritable arena" mmap
** clashes with TSan's shadow memory; Criterion issue #274), yet the threaded
** tests must run under TSan. The same test sources compile against this
** header instead: Test() registers a function, the cr_assert* macros report
** and abandon the test, and main() runs every test in its own forked child
** (as Criterion does), then prints "N passed, N failed".
*/
#ifndef TAKHIN_TSAN_SHIM_CRITERION_H
#define TAKHIN_TSAN_SHIM_CRITERION_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct mc_test {
  const char *suite, *name;
  void (*fn)(void);
} mc_test;

static mc_test mc_tests[256];
static int mc_ntests;

static void mc_register(const char *suite, const char *name, void (*fn)(void)) {
  if (mc_ntests < 256) mc_tests[mc_ntests++] = (mc_test){suite, name, fn};
}

__attribute__((format(printf, 5, 6))) static void mc_check(int ok, const char *expr,
                                                           const char *file, int line,
                                                           const char *fmt, ...) {
  if (ok) return;
  fprintf(stderr, "%s:%d: assertion failed: %s\n  ", file, line, expr);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  exit(1); /* we are the forked child running one test */
}

#define Test(suite, name, ...)                                                                     \
  static void suite##_##name(void);                                                                \
  __attribute__((constructor)) static void mc_reg_##suite##_##name(void) {                         \
    mc_register(#suite, #name, suite##_##name);                                                    \
  }                                                                                                \
  static void suite##_##name(void)

#define cr_assert(c, ...) mc_check(!!(c), #c, __FILE__, __LINE__, " " __VA_ARGS__)
#define cr_assert_not(c, ...) mc_check(!(c), "!" #c, __FILE__, __LINE__, " " __VA_ARGS__)
#define cr_assert_eq(a, b, ...)                                                                    \
  mc_check((a) == (b), #a " == " #b, __FILE__, __LINE__, " " __VA_ARGS__)
#define cr_assert_neq(a, b, ...)                                                                   \
  mc_check((a) != (b), #a " != " #b, __FILE__, __LINE__, " " __VA_ARGS__)
#define cr_assert_lt(a, b, ...)                                                                    \
  mc_check((a) < (b), #a " < " #b, __FILE__, __LINE__, " " __VA_ARGS__)
#define cr_assert_leq(a, b, ...)                                                                   \
  mc_check((a) <= (b), #a " <= " #b, __FILE__, __LINE__, " " __VA_ARGS__)
#define cr_assert_gt(a, b, ...)                                                                    \
  mc_check((a) > (b), #a " > " #b, __FILE__, __LINE__, " " __VA_ARGS__)
#define cr_assert_geq(a, b, ...)                                                                   \
  mc_check((a) >= (b), #a " >= " #b, __FILE__, __LINE__, " " __VA_ARGS__)
#define cr_assert_null(p, ...)                                                                     \
  mc_check((p) == NULL, #p " == NULL", __FILE__, __LINE__, " " __VA_ARGS__)
#define cr_assert_not_null(p, ...)                                                                 \
  mc_check((p) != NULL, #p " != NULL", __FILE__, __LINE__, " " __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...)                                                                \
  mc_check(!strcmp((a), (b)), #a " == " #b, __FILE__, __LINE__, " " __VA_ARGS__)
#define cr_skip_test(...)                                                                          \
  do {                                                                                             \
    fprintf(stderr, "skipped: " __VA_ARGS__);                                                      \
    fprintf(stderr, "\n");                                                                         \
    exit(77);                                                                                      \
  } while (0)

int main(void) {
  int passed = 0, failed = 0, skipped = 0;
  for (int i = 0; i < mc_ntests; i++) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
      mc_tests[i].fn();
      exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
    int skip = WIFEXITED(st) && WEXITSTATUS(st) == 77;
    printf("[%s] %s::%s\n",
           ok     ? "PASS"
           : skip ? "SKIP"
                  : "FAIL",
           mc_tests[i].suite, mc_tests[i].name);
    if (ok) passed++;
    else if (skip) skipped++;
    else failed++;
  }
  printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed ? 1 : 0;
}

#endif
