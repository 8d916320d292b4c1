/* units — the unit tree in memory. */
#include "units.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"

typedef struct {
  char *id, *region, *parent, *kind;
} unit;

struct unit_tree {
  unit *u;
  size_t n, cap;
  strmap *by_id; /* id -> index + 1 */
};

unit_tree *unit_tree_new(void) {
  unit_tree *t = calloc(1, sizeof *t);
  t->by_id = strmap_new();
  return t;
}

void unit_tree_destroy(unit_tree **selfp) {
  unit_tree *t = *selfp;
  if (!t)
    return;
  for (size_t i = 0; i < t->n; i++) {
    free(t->u[i].id);
    free(t->u[i].region);
    free(t->u[i].parent);
    free(t->u[i].kind);
  }
  free(t->u);
  strmap_destroy(&t->by_id);
  free(t);
  *selfp = NULL;
}

void unit_tree_add(unit_tree *t, const char *id, const char *region, const char *parent,
                   const char *kind) {
  if (!id || !*id || strmap_get(t->by_id, id))
    return;
  if (t->n == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 64;
    t->u = realloc(t->u, t->cap * sizeof *t->u);
  }
  unit *u = &t->u[t->n++];
  u->id = strdup(id);
  u->region = strdup(region ? region : "");
  u->parent = strdup(parent ? parent : "");
  u->kind = strdup(kind ? kind : "");
  strmap_put(t->by_id, u->id, (void *)(t->n));
}

size_t unit_tree_count(const unit_tree *t) { return t ? t->n : 0; }

static const unit *find(const unit_tree *t, const char *id) {
  if (!t || !id)
    return NULL;
  size_t i = (size_t)strmap_get(t->by_id, id);
  return i ? &t->u[i - 1] : NULL;
}

int unit_tree_has(const unit_tree *t, const char *id) { return find(t, id) != NULL; }

const char *unit_tree_parent(const unit_tree *t, const char *id) {
  const unit *u = find(t, id);
  return u && *u->parent ? u->parent : NULL;
}

static bool is_centre(const unit *u) {
  return strcmp(u->kind, "province") == 0 || strcmp(u->kind, "hq") == 0;
}

const char *unit_tree_centre_of(const unit_tree *t, const char *id) {
  const unit *u = find(t, id);
  for (int depth = 0; u && depth < 16; depth++) {
    if (is_centre(u))
      return u->id;
    u = find(t, u->parent);
  }
  return "hq";
}

const char *unit_tree_province_centre(const unit_tree *t, const char *region) {
  if (!t || !region || strlen(region) < 2)
    return NULL;
  for (size_t i = 0; i < t->n; i++)
    if (strcmp(t->u[i].kind, "province") == 0 && strncmp(t->u[i].region, region, 2) == 0)
      return t->u[i].id;
  return NULL;
}

const char *unit_tree_hq(const unit_tree *t) {
  for (size_t i = 0; t && i < t->n; i++)
    if (strcmp(t->u[i].kind, "hq") == 0)
      return t->u[i].id;
  return NULL;
}

const char *unit_tree_business_owner(const unit_tree *t, const char *centre, const char *line) {
  if (!t || !line || !*line)
    return NULL;
  char kind[96];
  snprintf(kind, sizeof kind, "business_owner-%s", line);
  const char *hq = unit_tree_hq(t);
  const char *at_hq = NULL;
  for (size_t i = 0; i < t->n; i++) {
    if (strcmp(t->u[i].kind, kind) != 0)
      continue;
    if (centre && strcmp(t->u[i].parent, centre) == 0)
      return t->u[i].id;
    if (!at_hq && hq && strcmp(t->u[i].parent, hq) == 0)
      at_hq = t->u[i].id;
  }
  return at_hq;
}
