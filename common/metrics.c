/* metrics — a small fixed registry of counters and gauges. */
#include "metrics.h"

#include <event2/buffer.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

enum { METRICS_MAX = 128 };

struct metric {
  char name[64];
  char help[128];
  int gauge;
  _Atomic int64_t value;
};

static struct metric registry[METRICS_MAX];
static int nmetrics;

static metric *find_or_add(const char *name, const char *help, int gauge) {
  for (int i = 0; i < nmetrics; i++)
    if (strcmp(registry[i].name + 5, name) == 0) return &registry[i];
  if (nmetrics == METRICS_MAX) {
    log_error("metrics: registry full, %s not registered", name);
    static struct metric sink;
    return &sink;
  }
  metric *m = &registry[nmetrics++];
  snprintf(m->name, sizeof m->name, "kesu_%s", name);
  snprintf(m->help, sizeof m->help, "%s", help ? help : name);
  m->gauge = gauge;
  return m;
}

metric *metric_counter(const char *name, const char *help) { return find_or_add(name, help, 0); }
metric *metric_gauge(const char *name, const char *help) { return find_or_add(name, help, 1); }
void metric_add(metric *m, int64_t n) { atomic_fetch_add(&m->value, n); }
void metric_set(metric *m, int64_t v) { atomic_store(&m->value, v); }
int64_t metric_get(const metric *m) { return atomic_load(&((metric *)m)->value); }

void metrics_render(struct evbuffer *out) {
  for (int i = 0; i < nmetrics; i++) {
    metric *m = &registry[i];
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", m->name, m->help, m->name,
                        m->gauge ? "gauge" : "counter", m->name,
                        (long long)atomic_load(&m->value));
  }
}
