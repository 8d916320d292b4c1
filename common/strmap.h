/* strmap — a string-keyed hash map of borrowed pointers.
 *
 * Keys are copied and owned by the map; values are the caller's (the map
 * never frees them). Not safe to put or remove while iterating with
 * strmap_each, except removing the entry being visited via the callback's
 * return value.
 */
#ifndef KESU_STRMAP_H
#define KESU_STRMAP_H
#include <stdbool.h>
#include <stddef.h>

typedef struct strmap strmap;

strmap *strmap_new(void);
void strmap_destroy(strmap **self);
void *strmap_get(const strmap *self, const char *key);
/* Inserts or replaces; returns the previous value (or NULL). */
void *strmap_put(strmap *self, const char *key, void *value);
/* Removes; returns the value that was there (or NULL). */
void *strmap_remove(strmap *self, const char *key);
size_t strmap_size(const strmap *self);
/* Visits every entry; a callback returning true removes the entry visited. */
typedef bool (*strmap_visit_fn)(const char *key, void *value, void *arg);
void strmap_each(strmap *self, strmap_visit_fn fn, void *arg);
#endif
