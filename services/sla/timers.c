/* timers — hash map + heap of open SLA timers (see timers.h). */
#include "timers.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_key(const char *order_no, const char *step) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)order_no; *p; p++) {
    h ^= *p;
    h *= 1099511628211ULL;
  }
  h ^= 0x1f;
  h *= 1099511628211ULL;
  for (const unsigned char *p = (const unsigned char *)step; *p; p++) {
    h ^= *p;
    h *= 1099511628211ULL;
  }
  return h;
}

void timer_set_init(timer_set *s) {
  s->nbuckets = 1024;
  s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
  s->count = 0;
  heap_init(&s->heap);
}

/* The strings live in the same allocation, after the struct. */
static void timer_free(sla_timer *t) { free(t); }

void timer_set_free(timer_set *s) {
  heap_free(&s->heap); /* first: it touches the nodes inside the timers */
  for (size_t i = 0; i < s->nbuckets; i++) {
    sla_timer *t = s->buckets[i];
    while (t) {
      sla_timer *n = t->next;
      timer_free(t);
      t = n;
    }
  }
  free(s->buckets);
  s->buckets = NULL;
  s->nbuckets = s->count = 0;
}

sla_timer *timer_set_get(const timer_set *s, const char *order_no, const char *step) {
  size_t b = (size_t)(hash_key(order_no, step) & (s->nbuckets - 1));
  for (sla_timer *t = s->buckets[b]; t; t = t->next)
    if (strcmp(t->order_no, order_no) == 0 && strcmp(t->step, step) == 0) return t;
  return NULL;
}

static void grow(timer_set *s) {
  size_t nb = s->nbuckets * 2;
  sla_timer **nbk = calloc(nb, sizeof *nbk);
  if (!nbk) return; /* keep the longer chains */
  for (size_t i = 0; i < s->nbuckets; i++) {
    sla_timer *t = s->buckets[i];
    while (t) {
      sla_timer *n = t->next;
      size_t b = (size_t)(hash_key(t->order_no, t->step) & (nb - 1));
      t->next = nbk[b];
      nbk[b] = t;
      t = n;
    }
  }
  free(s->buckets);
  s->buckets = nbk;
  s->nbuckets = nb;
}

sla_timer *timer_set_add(timer_set *s, const char *order_no, const char *step, const char *unit_id,
                         const char *region, int64_t started_at, int64_t warn_at, int64_t due_at,
                         int64_t limit_seconds) {
  if (timer_set_get(s, order_no, step)) return NULL;
  if (s->count + 1 > s->nbuckets) grow(s);
  unit_id = unit_id ? unit_id : "";
  region = region ? region : "";
  size_t l0 = strlen(order_no) + 1, l1 = strlen(step) + 1, l2 = strlen(unit_id) + 1,
         l3 = strlen(region) + 1;
  sla_timer *t = calloc(1, sizeof *t + l0 + l1 + l2 + l3);
  if (!t) return NULL;
  heap_node_init(&t->hn);
  char *p = (char *)(t + 1);
  t->order_no = memcpy(p, order_no, l0);
  t->step = memcpy(p += l0, step, l1);
  t->unit_id = memcpy(p += l1, unit_id, l2);
  t->region = memcpy(p += l2, region, l3);
  t->started_at = started_at;
  t->warn_at = warn_at;
  t->due_at = due_at;
  t->limit_seconds = limit_seconds;
  size_t b = (size_t)(hash_key(order_no, step) & (s->nbuckets - 1));
  t->next = s->buckets[b];
  s->buckets[b] = t;
  s->count++;
  return t;
}

void timer_set_del(timer_set *s, sla_timer *t) {
  heap_remove(&s->heap, &t->hn);
  size_t b = (size_t)(hash_key(t->order_no, t->step) & (s->nbuckets - 1));
  for (sla_timer **pp = &s->buckets[b]; *pp; pp = &(*pp)->next) {
    if (*pp == t) {
      *pp = t->next;
      s->count--;
      break;
    }
  }
  timer_free(t);
}

int64_t sla_timer_next_at(const sla_timer *t) {
  if (t->closed) return INT64_MAX;
  if (!t->warned) return t->warn_at;
  if (!t->breached) return t->due_at;
  if (t->escalated < 2 && t->escalate_at[t->escalated] > 0) return t->escalate_at[t->escalated];
  return INT64_MAX;
}

void timer_set_arm(timer_set *s, sla_timer *t) {
  int64_t at = sla_timer_next_at(t);
  if (at == INT64_MAX) {
    heap_remove(&s->heap, &t->hn);
    return;
  }
  heap_update(&s->heap, &t->hn, at);
}

sla_timer *timer_set_pop_due(timer_set *s, int64_t now) {
  heap_node *top = heap_top(&s->heap);
  if (!top || top->at > now) return NULL;
  heap_pop(&s->heap);
  return (sla_timer *)top; /* hn is the first member */
}

int64_t timer_set_next_at(const timer_set *s) {
  heap_node *top = heap_top(&s->heap);
  return top ? top->at : INT64_MAX;
}

int64_t sla_answer_limit_seconds(const char *tier) {
  if (tier && strcmp(tier, "provincial") == 0) return 48 * 3600;
  if (tier && strcmp(tier, "national") == 0) return 72 * 3600;
  return 24 * 3600;
}

void sla_deadlines(int64_t started_ms, int64_t limit_seconds, int64_t *warn_at, int64_t *due_at) {
  int64_t limit_ms = limit_seconds * 1000;
  *warn_at = started_ms + limit_ms / 10 * 9 + (limit_ms % 10) * 9 / 10;
  *due_at = started_ms + limit_ms;
}
