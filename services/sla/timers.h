/* timers — the SLA watcher's in-memory view of open timers: a hash map by
 * (order_no, step) and a min-heap by next fire time (warn_at until the
 * warning is recorded, then due_at, then the escalation rungs at 150 % and
 * 200 % when the timer has them, R-32). The database (sla.timers) is the truth;
 * this is rebuilt from it at start. */
#ifndef KESU_SLA_TIMERS_H
#define KESU_SLA_TIMERS_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "heap.h"

typedef struct sla_timer {
  heap_node hn; /* keep first: the heap hands back &timer->hn */
  char *order_no; /* the four strings point into the timer's own allocation */
  char *step;     /* step name, e.g. "answer" */
  char *unit_id;
  char *region;
  int64_t started_at, warn_at, due_at, limit_seconds;
  int64_t escalate_at[2]; /* 0: no such rung */
  int escalated;          /* rungs fired (0..2) */
  bool warned, breached;
  bool inflight; /* a fire transaction for it is in flight (not in the heap) */
  bool closed;   /* closed while in flight: free when the fire completes */
  struct sla_timer *next; /* hash chain */
} sla_timer;

typedef struct {
  sla_timer **buckets;
  size_t nbuckets, count;
  heap heap;
} timer_set;

void timer_set_init(timer_set *s);
void timer_set_free(timer_set *s); /* frees every timer */
sla_timer *timer_set_get(const timer_set *s, const char *order_no, const char *step);
/* Creates and indexes a timer (not armed); NULL if (order_no, step) exists
 * or memory is short. */
sla_timer *timer_set_add(timer_set *s, const char *order_no, const char *step, const char *unit_id,
                         const char *region, int64_t started_at, int64_t warn_at, int64_t due_at,
                         int64_t limit_seconds);
/* Removes from map and heap and frees. */
void timer_set_del(timer_set *s, sla_timer *t);
/* The next fire time of t (warn_at, due_at or a rung), INT64_MAX when
 * nothing is left to fire. */
int64_t sla_timer_next_at(const sla_timer *t);
/* Puts t in the heap at its next fire time; takes it out when nothing is
 * left to fire. */
void timer_set_arm(timer_set *s, sla_timer *t);
/* The earliest armed timer with fire time <= now, taken out of the heap; NULL
 * if none. */
sla_timer *timer_set_pop_due(timer_set *s, int64_t now);
/* Fire time of the earliest armed timer, or INT64_MAX. */
int64_t timer_set_next_at(const timer_set *s);

/* Limit of the ANSWER step by tier name (R-25 hard limits): general 24 h,
 * provincial 48 h, national 72 h; anything else counts as general. */
int64_t sla_answer_limit_seconds(const char *tier);
/* warn_at = started + 90 % of the limit; due_at = started + limit. */
void sla_deadlines(int64_t started_ms, int64_t limit_seconds, int64_t *warn_at, int64_t *due_at);
#endif
