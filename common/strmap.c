/* strmap — chained hash table (FNV-1a), doubling at load factor 1. */
#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
  char *key;
  void *value;
  uint32_t hash;
  struct entry *next;
} entry;

struct strmap {
  entry **buckets;
  size_t nbuckets;
  size_t size;
};

static uint32_t fnv1a(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++)
    h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}

strmap *strmap_new(void) {
  strmap *self = calloc(1, sizeof *self);
  self->nbuckets = 64;
  self->buckets = calloc(self->nbuckets, sizeof *self->buckets);
  return self;
}

void strmap_destroy(strmap **selfp) {
  strmap *self = *selfp;
  if (!self)
    return;
  for (size_t i = 0; i < self->nbuckets; i++) {
    entry *e = self->buckets[i];
    while (e) {
      entry *next = e->next;
      free(e->key);
      free(e);
      e = next;
    }
  }
  free(self->buckets);
  free(self);
  *selfp = NULL;
}

static entry **find(const strmap *self, const char *key, uint32_t h) {
  entry **pp = &self->buckets[h & (self->nbuckets - 1)];
  while (*pp && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0))
    pp = &(*pp)->next;
  return pp;
}

void *strmap_get(const strmap *self, const char *key) {
  entry **pp = find(self, key, fnv1a(key));
  return *pp ? (*pp)->value : NULL;
}

static void grow(strmap *self) {
  size_t n = self->nbuckets * 2;
  entry **b = calloc(n, sizeof *b);
  for (size_t i = 0; i < self->nbuckets; i++) {
    entry *e = self->buckets[i];
    while (e) {
      entry *next = e->next;
      e->next = b[e->hash & (n - 1)];
      b[e->hash & (n - 1)] = e;
      e = next;
    }
  }
  free(self->buckets);
  self->buckets = b;
  self->nbuckets = n;
}

void *strmap_put(strmap *self, const char *key, void *value) {
  uint32_t h = fnv1a(key);
  entry **pp = find(self, key, h);
  if (*pp) {
    void *old = (*pp)->value;
    (*pp)->value = value;
    return old;
  }
  entry *e = malloc(sizeof *e);
  e->key = strdup(key);
  e->value = value;
  e->hash = h;
  e->next = NULL;
  *pp = e;
  if (++self->size > self->nbuckets)
    grow(self);
  return NULL;
}

void *strmap_remove(strmap *self, const char *key) {
  entry **pp = find(self, key, fnv1a(key));
  entry *e = *pp;
  if (!e)
    return NULL;
  void *v = e->value;
  *pp = e->next;
  free(e->key);
  free(e);
  self->size--;
  return v;
}

size_t strmap_size(const strmap *self) { return self->size; }

void strmap_each(strmap *self, strmap_visit_fn fn, void *arg) {
  for (size_t i = 0; i < self->nbuckets; i++) {
    entry **pp = &self->buckets[i];
    while (*pp) {
      entry *e = *pp;
      if (fn(e->key, e->value, arg)) {
        *pp = e->next;
        free(e->key);
        free(e);
        self->size--;
      } else {
        pp = &e->next;
      }
    }
  }
}
