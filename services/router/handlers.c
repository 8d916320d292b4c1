/* handlers — registry of connected handlers and the choice of one for an order. */
#include "handlers.h"

#include <stdlib.h>
#include <string.h>

struct handler_set {
  handler_link **links;
  size_t n, cap;
  size_t next; /* round-robin start for ties */
};

handler_set *handler_set_new(void) { return calloc(1, sizeof(handler_set)); }

static void link_free_units(handler_link *h) {
  for (size_t i = 0; i < h->nunits; i++)
    free(h->units[i]);
  free(h->units);
  h->units = NULL;
  h->nunits = 0;
  h->all_units = false;
}

static void link_free(handler_link *h) {
  link_free_units(h);
  free(h->id);
  free(h);
}

void handler_set_destroy(handler_set **selfp) {
  handler_set *self = *selfp;
  if (!self)
    return;
  for (size_t i = 0; i < self->n; i++)
    link_free(self->links[i]);
  free(self->links);
  free(self);
  *selfp = NULL;
}

handler_link *handler_set_find(handler_set *self, const char *id) {
  for (size_t i = 0; i < self->n; i++)
    if (strcmp(self->links[i]->id, id) == 0)
      return self->links[i];
  return NULL;
}

handler_link *handler_set_hello(handler_set *self, const char *id, const char *const *units,
                                size_t nunits, uint32_t credit, int64_t now_ms) {
  handler_link *h = handler_set_find(self, id);
  if (!h) {
    if (self->n == self->cap) {
      self->cap = self->cap ? self->cap * 2 : 8;
      self->links = realloc(self->links, self->cap * sizeof *self->links);
    }
    h = calloc(1, sizeof *h);
    h->id = strdup(id);
    h->connected_ms = now_ms;
    self->links[self->n++] = h;
  }
  link_free_units(h);
  h->units = calloc(nunits ? nunits : 1, sizeof *h->units);
  for (size_t i = 0; i < nunits; i++) {
    if (strcmp(units[i], "*") == 0)
      h->all_units = true;
    h->units[h->nunits++] = strdup(units[i]);
  }
  if (nunits == 0)
    h->all_units = true; /* no list: serves everything, like "*" */
  h->credit = credit;
  h->last_seen_ms = now_ms;
  h->dead = false;
  return h;
}

bool handler_link_serves(const handler_link *h, const char *unit_id) {
  if (h->all_units)
    return true;
  for (size_t i = 0; i < h->nunits; i++)
    if (strcmp(h->units[i], unit_id) == 0)
      return true;
  return false;
}

handler_link *handler_set_pick(handler_set *self, const char *unit_id) {
  handler_link *best = NULL;
  size_t best_i = 0;
  uint32_t best_free = 0;
  for (size_t k = 0; k < self->n; k++) {
    size_t i = (self->next + k) % self->n;
    handler_link *h = self->links[i];
    if (h->dead || h->inflight >= h->credit || !handler_link_serves(h, unit_id))
      continue;
    uint32_t free_credit = h->credit - h->inflight;
    if (free_credit > best_free) {
      best = h;
      best_i = i;
      best_free = free_credit;
    }
  }
  if (best)
    self->next = (best_i + 1) % self->n;
  return best;
}

int handler_set_expire(handler_set *self, int64_t now_ms, int64_t timeout_ms,
                       void (*gone)(handler_link *h, void *arg), void *arg) {
  int dropped = 0;
  size_t j = 0;
  for (size_t i = 0; i < self->n; i++) {
    handler_link *h = self->links[i];
    if (h->dead || now_ms - h->last_seen_ms > timeout_ms) {
      if (gone)
        gone(h, arg);
      link_free(h);
      dropped++;
    } else {
      self->links[j++] = h;
    }
  }
  self->n = j;
  if (self->next >= self->n)
    self->next = 0;
  return dropped;
}

size_t handler_set_count(const handler_set *self) { return self->n; }
handler_link *handler_set_at(handler_set *self, size_t i) {
  return i < self->n ? self->links[i] : NULL;
}
