/* log — JSON lines on stderr. One write(2) per line so lines from several
 * processes sharing a pipe never interleave. */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static char service_name[32] = "kesu";

void log_init(const char *service) {
  snprintf(service_name, sizeof service_name, "%s", service ? service : "kesu");
}

const char *log_service(void) { return service_name; }

void log_msg(const char *level, const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  /* Wall-clock time of the log line itself (not business time). */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char when[40];
  size_t n = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(when + n, sizeof when - n, ".%03ldZ", ts.tv_nsec / 1000000);
  json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "ts", when, "level", level, "svc", service_name,
                        "msg", "");
  /* json_stringn with a message that may be cut mid-character by vsnprintf:
   * jansson rejects invalid UTF-8, so fall back to a marker. */
  json_t *m = json_string(msg);
  if (!m) m = json_string("(message not valid UTF-8)");
  json_object_set_new(o, "msg", m);
  char *line = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  if (!line) return;
  size_t len = strlen(line);
  char buf[4096];
  if (len + 1 < sizeof buf) {
    memcpy(buf, line, len);
    buf[len] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, len + 1);
    (void)w;
  } else {
    fprintf(stderr, "%s\n", line);
  }
  free(line);
}
