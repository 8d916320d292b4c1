/* heap — intrusive binary min-heap (see heap.h). */
#include "heap.h"

#include <stdlib.h>

void heap_init(heap *h) {
  h->v = NULL;
  h->n = h->cap = 0;
}

void heap_free(heap *h) {
  for (size_t i = 0; i < h->n; i++) h->v[i]->idx = HEAP_NONE;
  free(h->v);
  heap_init(h);
}

void heap_node_init(heap_node *x) {
  x->at = 0;
  x->idx = HEAP_NONE;
}

static void place(heap *h, size_t i, heap_node *x) {
  h->v[i] = x;
  x->idx = i;
}

static void sift_up(heap *h, size_t i) {
  heap_node *x = h->v[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (h->v[p]->at <= x->at) break;
    place(h, i, h->v[p]);
    i = p;
  }
  place(h, i, x);
}

static void sift_down(heap *h, size_t i) {
  heap_node *x = h->v[i];
  for (;;) {
    size_t l = 2 * i + 1;
    if (l >= h->n) break;
    size_t c = l;
    if (l + 1 < h->n && h->v[l + 1]->at < h->v[l]->at) c = l + 1;
    if (h->v[c]->at >= x->at) break;
    place(h, i, h->v[c]);
    i = c;
  }
  place(h, i, x);
}

int heap_push(heap *h, heap_node *x, int64_t at) {
  if (h->n == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 64;
    heap_node **v = realloc(h->v, cap * sizeof *v);
    if (!v) return -1;
    h->v = v;
    h->cap = cap;
  }
  x->at = at;
  place(h, h->n++, x);
  sift_up(h, h->n - 1);
  return 0;
}

heap_node *heap_top(const heap *h) { return h->n ? h->v[0] : NULL; }

void heap_remove(heap *h, heap_node *x) {
  size_t i = x->idx;
  if (i == HEAP_NONE || i >= h->n || h->v[i] != x) return;
  x->idx = HEAP_NONE;
  h->n--;
  if (i == h->n) return; /* it was the last one */
  heap_node *last = h->v[h->n];
  place(h, i, last);
  /* The moved node may belong above or below its new place. */
  if (i > 0 && h->v[(i - 1) / 2]->at > last->at)
    sift_up(h, i);
  else
    sift_down(h, i);
}

heap_node *heap_pop(heap *h) {
  heap_node *x = heap_top(h);
  if (x) heap_remove(h, x);
  return x;
}

int heap_update(heap *h, heap_node *x, int64_t at) {
  if (x->idx == HEAP_NONE) return heap_push(h, x, at);
  int64_t old = x->at;
  x->at = at;
  if (at < old)
    sift_up(h, x->idx);
  else if (at > old)
    sift_down(h, x->idx);
  return 0;
}

bool heap_valid(const heap *h) {
  for (size_t i = 0; i < h->n; i++) {
    if (h->v[i]->idx != i) return false;
    if (i > 0 && h->v[(i - 1) / 2]->at > h->v[i]->at) return false;
  }
  return true;
}
