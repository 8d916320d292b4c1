/* units — the unit tree (router.units, R-03/R-04) in memory, for deciding at
 * creation who holds an order and who dispatched it, without
 * a query per order. Reloaded with the routing rules (NOTIFY router_reference).
 *
 * Kinds used: hq, province (complaint centres), city, county, and
 * "business_owner-<line>" (投诉业务责任部门 of a business line, child of the centre
 * it serves). Pure data, no I/O. */
#ifndef KESU_ROUTER_UNITS_H
#define KESU_ROUTER_UNITS_H
#include <stddef.h>

typedef struct unit_tree unit_tree;

unit_tree *unit_tree_new(void);
void unit_tree_destroy(unit_tree **self);
/* Copies its arguments (NULL = ""). */
void unit_tree_add(unit_tree *self, const char *id, const char *region, const char *parent,
                   const char *kind);
size_t unit_tree_count(const unit_tree *self);
int unit_tree_has(const unit_tree *self, const char *id);
/* The parent of id, or NULL. */
const char *unit_tree_parent(const unit_tree *self, const char *id);
/* The nearest complaint centre at or above id (kind province or hq); "hq" if none
 * (as router.centre_of did). */
const char *unit_tree_centre_of(const unit_tree *self, const char *id);
/* The province centre whose region is the province of region (first two digits), or NULL. */
const char *unit_tree_province_centre(const unit_tree *self, const char *region);
/* The first unit of kind hq, or NULL. */
const char *unit_tree_hq(const unit_tree *self);
/* The business-owner department of line under centre (kind "business_owner-<line>", parent
 * centre), else the one under HQ, else NULL. */
const char *unit_tree_business_owner(const unit_tree *self, const char *centre, const char *line);
#endif
