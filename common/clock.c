/* clock — real time, or real time plus an offset shared through a small
 * mmap'd file (KESU_CLOCK=control:/path), so tests move every process's
 * clock at once. The file holds one int64 offset in ms (native endian). */
#include "clock.h"

#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static _Atomic int64_t *shared_offset; /* NULL in real mode */

static int64_t real_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int clock_init(const char *spec) {
  if (!spec || !*spec || strcmp(spec, "real") == 0) {
    shared_offset = NULL;
    return 0;
  }
  if (strncmp(spec, "control:", 8) != 0 || !spec[8]) {
    log_error("clock: KESU_CLOCK must be 'real' or 'control:/path', got '%s'", spec);
    return -1;
  }
  const char *path = spec + 8;
  int fd = open(path, O_RDWR | O_CREAT, 0644);
  if (fd < 0) {
    log_error("clock: cannot open %s: %m", path);
    return -1;
  }
  struct stat st;
  if (fstat(fd, &st) == 0 && st.st_size < (off_t)sizeof(int64_t)) {
    if (ftruncate(fd, sizeof(int64_t)) != 0) {
      log_error("clock: cannot size %s: %m", path);
      close(fd);
      return -1;
    }
  }
  void *p = mmap(NULL, sizeof(int64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (p == MAP_FAILED) {
    log_error("clock: cannot map %s: %m", path);
    return -1;
  }
  shared_offset = p;
  return 0;
}

int64_t clock_now_ms(void) {
  int64_t now = real_ms();
  if (shared_offset) now += atomic_load(shared_offset);
  return now;
}

bool clock_is_controllable(void) { return shared_offset != NULL; }

int clock_advance_ms(int64_t delta_ms) {
  if (!shared_offset) return -1;
  atomic_fetch_add(shared_offset, delta_ms);
  return 0;
}

int clock_set_ms(int64_t now_ms) {
  if (!shared_offset) return -1;
  atomic_store(shared_offset, now_ms - real_ms());
  return 0;
}

void clock_format_ms(int64_t ms, char *buf, size_t len) {
  /* Asia/Shanghai has been UTC+8 without DST since 1991. */
  int64_t local = ms + 8 * 3600 * 1000LL;
  time_t secs = (time_t)(local >= 0 ? local / 1000 : (local - 999) / 1000);
  int milli = (int)(local - (int64_t)secs * 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03d+08:00", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, milli);
}

static int digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

int clock_parse_ms(const char *s, int64_t *ms) {
  int Y, M, D, h, m, sec, milli = 0;
  if (!s || strlen(s) < 20) return -1;
  if (digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) || s[7] != '-' ||
      digits(s + 8, 2, &D) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
      digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &m) || s[16] != ':' ||
      digits(s + 17, 2, &sec))
    return -1;
  const char *p = s + 19;
  if (*p == '.') {
    p++;
    int nd = 0;
    milli = 0;
    while (*p >= '0' && *p <= '9') {
      if (nd < 3) milli = milli * 10 + (*p - '0');
      nd++;
      p++;
    }
    if (nd == 0) return -1;
    for (; nd < 3; nd++) milli *= 10;
  }
  int off_min;
  if (*p == 'Z' || *p == 'z') {
    off_min = 0;
    p++;
  } else if (*p == '+' || *p == '-') {
    int oh, om;
    if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om)) return -1;
    off_min = (oh * 60 + om) * (*p == '-' ? -1 : 1);
    p += 6;
  } else {
    return -1;
  }
  if (*p) return -1;
  if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return -1;
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
  if (D > mdays[M - 1] + (M == 2 && leap)) return -1;
  /* days from civil (Howard Hinnant) */
  int y = Y - (M <= 2);
  int era = (y >= 0 ? y : y - 399) / 400;
  int yoe = y - era * 400;
  int doy = (153 * (M + (M > 2 ? -3 : 9)) + 2) / 5 + D - 1;
  int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  int64_t days = (int64_t)era * 146097 + doe - 719468;
  *ms = ((days * 86400 + h * 3600 + m * 60 + sec) - (int64_t)off_min * 60) * 1000 + milli;
  return 0;
}
