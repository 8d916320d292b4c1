/* kesuctl clock — show or move the controllable clock (common/clock.h) that
 * every process started with the same KESU_CLOCK=control:/path shares. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "csv.h"
#include "kesuctl.h"

static void clock_usage(void) {
  fprintf(stderr,
          "usage: kesuctl clock show\n"
          "       kesuctl clock advance DURATION   e.g. 21h36m, 90m, 2d, 3600s, -1h\n"
          "       kesuctl clock set RFC3339        e.g. 2026-11-23T10:00:00+08:00\n"
          "  needs KESU_CLOCK=control:/path (the same file the services use)\n");
}

static void show(const char *spec) {
  int64_t now = clock_now_ms();
  char buf[40];
  clock_format_ms(now, buf, sizeof buf);
  if (!clock_is_controllable()) {
    printf("%s (real clock)\n", buf);
    return;
  }
  /* The wall clock only to show how far the controllable clock is moved. */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t real = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  /* Rounded to the second: the two readings are a few microseconds apart. */
  int64_t d = now - real;
  d = (d >= 0 ? d + 500 : d - 500) / 1000 * 1000;
  char off[64];
  format_duration_ms(d, off, sizeof off);
  printf("%s (%s, %s%s from the real clock)\n", buf, spec, d >= 0 ? "+" : "", off);
}

int cmd_clock(int argc, char **argv) {
  if (argc < 2) {
    clock_usage();
    return EXIT_USAGE;
  }
  const char *sub = argv[1];
  bool is_show = strcmp(sub, "show") == 0, is_adv = strcmp(sub, "advance") == 0,
       is_set = strcmp(sub, "set") == 0;
  if (!is_show && !is_adv && !is_set) {
    ctl_err("clock: unknown subcommand '%s'", sub);
    clock_usage();
    return EXIT_USAGE;
  }
  if (argc != (is_show ? 2 : 3)) {
    clock_usage();
    return EXIT_USAGE;
  }
  const char *spec = getenv("KESU_CLOCK");
  if (clock_init(spec) != 0) {
    ctl_err("clock: cannot use KESU_CLOCK='%s' (expected real or control:/path)", spec);
    return EXIT_FAIL;
  }
  if (is_show) {
    show(spec);
    return EXIT_OK;
  }
  if (!clock_is_controllable()) {
    ctl_err("clock %s: the real clock cannot be changed; start the services and kesuctl with "
            "KESU_CLOCK=control:/path",
            sub);
    return EXIT_FAIL;
  }
  if (is_adv) {
    int64_t d;
    if (parse_duration_ms(argv[2], &d) != 0) {
      ctl_err("clock advance: '%s' is not a duration (e.g. 21h36m, 90m, 2d, 3600s, 500ms)",
              argv[2]);
      return EXIT_USAGE;
    }
    if (clock_advance_ms(d) != 0) {
      ctl_err("clock advance: failed");
      return EXIT_FAIL;
    }
  } else {
    int64_t t;
    if (clock_parse_ms(argv[2], &t) != 0) {
      ctl_err("clock set: '%s' is not an RFC 3339 time (e.g. 2026-11-23T10:00:00+08:00)",
              argv[2]);
      return EXIT_USAGE;
    }
    if (clock_set_ms(t) != 0) {
      ctl_err("clock set: failed");
      return EXIT_FAIL;
    }
  }
  show(spec);
  return EXIT_OK;
}
