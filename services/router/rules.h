/* rules — which unit a work order goes to (docs/internals.md "Routing rules",
 * router.routing_rules).
 *
 * A rule matches on six dimensions: region (a prefix), business line,
 * business type, problem type, channel and customer level; an empty value
 * means "any". Of the rules that match an order, the most specific wins:
 *   1. more non-empty dimensions other than the region (business line,
 *      business type, problem type, channel, customer level);
 *   2. then the longer region prefix (after normalisation, below);
 *   3. then the higher priority;
 *   4. then the rule added first (lower id in router.routing_rules).
 * So a region-only table behaves as before: longest prefix, then priority.
 *
 * A prefix is taken literally ("31", "3101"), except that a 6-digit GB/T 2260
 * code stands for the area it names, as in token scopes: "310000" = "31",
 * "310100" = "3101", "000000" = every region. "", "*" and "000000" are
 * catch-alls. The other dimensions compare exactly, ASCII case-insensitive
 * ("*" = any as well). The customer level "vip" in a rule is a class: it also
 * matches the VIP levels of R-15 (level_is_vip: diamond, gold, silver, 3g); a
 * rule naming the order's exact level beats it at the same specificity.
 *
 * Matching is indexed: every rule lives in a hash keyed by (dimension mask,
 * region prefix, values), keeping the best rule per key; a decision is one
 * lookup per (mask present, prefix length present), most specific mask first,
 * stopping at the first dimension count that matches. Pure data, no I/O.
 */
#ifndef KESU_ROUTER_RULES_H
#define KESU_ROUTER_RULES_H
#include <stddef.h>

typedef struct routing_rules routing_rules;

/* The dimensions besides the region, in this order everywhere. */
enum { RD_LINE, RD_BTYPE, RD_PTYPE, RD_CHANNEL, RD_LEVEL, RD_N };

typedef struct {
  const char *region_prefix;
  const char *business_line, *business_type, *problem_type, *channel, *customer_level;
  const char *unit_id;
  int priority;
  long id; /* informational (router.routing_rules.id); ties go to the add order */
} routing_rule_def;

typedef struct {
  const char *region;
  const char *business_line, *business_type, *problem_type, *channel, *customer_level;
} routing_query;

/* What a decision chose. Strings are owned by the rules. */
typedef struct {
  const char *unit_id;
  int dims;       /* non-empty dimensions other than the region */
  int prefix_len; /* normalised region prefix length */
  int priority;
  long id;
} routing_match;

routing_rules *routing_rules_new(void);
void routing_rules_destroy(routing_rules **self);
/* Copies its arguments. */
void routing_rules_add_rule(routing_rules *self, const routing_rule_def *def);
/* A region-only rule. */
void routing_rules_add(routing_rules *self, const char *region_prefix, const char *unit_id,
                       int priority);
size_t routing_rules_count(const routing_rules *self);
/* The most specific matching rule: fills *out (if not NULL) and returns its
 * unit, or NULL when no rule matches. */
const char *routing_rules_match(const routing_rules *self, const routing_query *q,
                                routing_match *out);
/* routing_rules_match with only a region (other dimensions empty). */
const char *routing_rules_choose(const routing_rules *self, const char *region);
/* The effective prefix of a rule's region_prefix (see above), written to out. */
void routing_prefix_normalize(const char *region_prefix, char *out, size_t outlen);
#endif
