/* heap — a binary min-heap of timer nodes ordered by fire time.
 *
 * Intrusive: the node lives inside the caller's struct and remembers its
 * index, so a node can be removed or re-keyed in O(log n) (a timer closed or
 * re-armed) without searching. */
#ifndef KESU_SLA_HEAP_H
#define KESU_SLA_HEAP_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HEAP_NONE ((size_t)-1)

typedef struct {
  int64_t at;  /* fire time, Unix ms */
  size_t idx;  /* position in the heap, HEAP_NONE when not in it */
} heap_node;

typedef struct {
  heap_node **v;
  size_t n, cap;
} heap;

void heap_init(heap *h);
void heap_free(heap *h); /* frees the array, not the nodes */
void heap_node_init(heap_node *x);
static inline bool heap_node_queued(const heap_node *x) { return x->idx != HEAP_NONE; }
static inline size_t heap_size(const heap *h) { return h->n; }

/* Adds x with fire time at (x must not be in a heap). Returns 0, -1 on OOM. */
int heap_push(heap *h, heap_node *x, int64_t at);
/* Earliest node or NULL. */
heap_node *heap_top(const heap *h);
/* Removes and returns the earliest node, or NULL. */
heap_node *heap_pop(heap *h);
/* Removes x if it is in the heap. */
void heap_remove(heap *h, heap_node *x);
/* Changes x's fire time (pushes it if not in the heap). Returns 0 or -1. */
int heap_update(heap *h, heap_node *x, int64_t at);
/* Checks the heap property and indices (tests). */
bool heap_valid(const heap *h);
#endif
