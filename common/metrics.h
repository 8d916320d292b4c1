/* metrics — process-wide counters rendered as Prometheus text. */
#ifndef KESU_METRICS_H
#define KESU_METRICS_H
#include <stdint.h>
struct evbuffer;
typedef struct metric metric;
/* Registers (or finds) a counter kesu_<name>; pointer lives for the process. */
metric *metric_counter(const char *name, const char *help);
metric *metric_gauge(const char *name, const char *help);
void metric_add(metric *m, int64_t n);
void metric_set(metric *m, int64_t v);
int64_t metric_get(const metric *m);
void metrics_render(struct evbuffer *out);
#endif
