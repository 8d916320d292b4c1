/* rules — which unit a work order goes to: the routing rule with the longest
 * region prefix matching the order's region wins (docs/internals.md,
 * router.routing_rules); equal lengths go to the higher priority, then to
 * the rule loaded first.
 *
 * A prefix is taken literally ("31", "3101"), except that a 6-digit GB/T 2260
 * code stands for the area it names, as in token scopes: "310000" = "31",
 * "310100" = "3101", "000000" = every region. "", "*" and "000000" are
 * catch-alls. Pure data, no I/O: the router loads rows into it.
 */
#ifndef KESU_ROUTER_RULES_H
#define KESU_ROUTER_RULES_H
#include <stddef.h>

typedef struct routing_rules routing_rules;

routing_rules *routing_rules_new(void);
void routing_rules_destroy(routing_rules **self);
/* Copies its arguments. */
void routing_rules_add(routing_rules *self, const char *region_prefix, const char *unit_id,
                       int priority);
size_t routing_rules_count(const routing_rules *self);
/* The unit for region, or NULL when no rule matches. Owned by the rules. */
const char *routing_rules_choose(const routing_rules *self, const char *region);
/* The effective prefix of a rule's region_prefix (see above), written to out. */
void routing_prefix_normalize(const char *region_prefix, char *out, size_t outlen);
#endif
