/* bench-routing — in-process routing decisions against a synthetic rule table
 * (issue 3 "Speed": >= 100,000 decisions/s against 5,000 rules).
 *
 *   build/bin/bench-routing [DECISIONS [RULES]]   (default 2000000 5000)
 *
 * Rules: a catch-all, 31 provinces, 8 cities each, then rules on province ×
 * problem type, city × channel, province × business type × problem type,
 * province × customer level, city × level × channel and random 3-dimension
 * rules until RULES. Queries: random orders (county-level region codes, every
 * dimension filled). Every decision of the first 4,096 queries is checked
 * against a brute-force scan of the specificity order (rules.h) before the
 * timing starts. Prints decisions/s. Built by `make all`, never run by `make test`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rules.h"

static const char *const provinces[] = {"11", "12", "13", "14", "15", "21", "22", "23",
                                        "31", "32", "33", "34", "35", "36", "37", "41",
                                        "42", "43", "44", "45", "46", "50", "51", "52",
                                        "53", "54", "61", "62", "63", "64", "65"};
enum { NPROV = 31, NCITY = 8 };
static const char *const lines[] = {"telecom", "power", "cable"};
static const char *const btypes[] = {"mobile", "broadband", "fixed", "iptv", "value_added",
                                     "channel_service"};
static const char *const ptypes[] = {"network", "interconnection", "roaming", "billing",
                                     "tariff", "business_handling", "subscription", "terminal",
                                     "installation", "outage", "fraud", "attitude"};
static const char *const channels[] = {"hotline", "gm_hotline", "hall", "website", "app",
                                       "regulator", "letter", "media"};
static const char *const levels[] = {"diamond", "gold", "silver", "group_a", "ordinary"};
#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}
static int pick(int n) { return (int)(next() % (uint64_t)n); }

typedef struct {
  char region[8];
  const char *v[RD_N];
  char unit[24];
  int priority, plen, dims;
} gen_rule;

static gen_rule *defs;
static int ndefs;

static void gen(routing_rules *rs, const char *region, const char *line, const char *bt,
                const char *pt, const char *ch, const char *lv, int priority) {
  gen_rule *g = &defs[ndefs];
  snprintf(g->region, sizeof g->region, "%s", region);
  const char *v[RD_N] = {line, bt, pt, ch, lv};
  g->dims = 0;
  for (int d = 0; d < RD_N; d++) {
    g->v[d] = v[d] ? v[d] : "";
    g->dims += *g->v[d] != '\0';
  }
  g->plen = (int)strlen(region);
  g->priority = priority;
  snprintf(g->unit, sizeof g->unit, "u%d", ndefs);
  routing_rule_def d = {region, line, bt, pt, ch, lv, g->unit, priority, ndefs};
  routing_rules_add_rule(rs, &d);
  ndefs++;
}

static void city(char *out, int p, int c) { sprintf(out, "%s%02d", provinces[p], c + 1); }

/* The rule the specificity order of rules.h chooses, by scanning them all. */
static const char *brute(const routing_query *q) {
  const char *qv[RD_N] = {q->business_line, q->business_type, q->problem_type, q->channel,
                          q->customer_level};
  const gen_rule *best = NULL;
  for (int i = 0; i < ndefs; i++) {
    const gen_rule *g = &defs[i];
    if (strncmp(q->region, g->region, (size_t)g->plen) != 0)
      continue;
    int ok = 1;
    for (int d = 0; ok && d < RD_N; d++)
      ok = !*g->v[d] || strcmp(g->v[d], qv[d]) == 0;
    if (!ok)
      continue;
    if (!best || g->dims > best->dims ||
        (g->dims == best->dims &&
         (g->plen > best->plen || (g->plen == best->plen && g->priority > best->priority))))
      best = g;
  }
  return best ? best->unit : NULL;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  long decisions = argc > 1 ? atol(argv[1]) : 2000000;
  int nrules = argc > 2 ? atoi(argv[2]) : 5000;
  if (decisions < 1 || nrules < 1 + NPROV + NPROV * NCITY) {
    fprintf(stderr, "usage: bench-routing [DECISIONS [RULES >= %d]]\n", 1 + NPROV + NPROV * NCITY);
    return 2;
  }
  defs = calloc((size_t)nrules, sizeof *defs);
  routing_rules *rs = routing_rules_new();
  char r[8];
  double t0 = now_s();
#define ROOM (ndefs < nrules)
  gen(rs, "", NULL, NULL, NULL, NULL, NULL, 0);
  for (int p = 0; p < NPROV; p++)
    gen(rs, provinces[p], NULL, NULL, NULL, NULL, NULL, 0);
  for (int p = 0; p < NPROV; p++)
    for (int c = 0; c < NCITY; c++)
      city(r, p, c), gen(rs, r, NULL, NULL, NULL, NULL, NULL, 0);
  for (int p = 0; ROOM && p < NPROV; p++)
    for (int t = 0; ROOM && t < N(ptypes); t++)
      gen(rs, provinces[p], NULL, NULL, ptypes[t], NULL, NULL, 0);
  for (int p = 0; ROOM && p < NPROV; p++)
    for (int c = 0; ROOM && c < NCITY; c++)
      for (int k = 0; ROOM && k < 5; k++)
        city(r, p, c), gen(rs, r, NULL, NULL, NULL, channels[k], NULL, pick(3));
  for (int p = 0; ROOM && p < NPROV; p++)
    for (int b = 0; ROOM && b < N(btypes); b++)
      for (int t = 0; ROOM && t < N(ptypes); t++)
        gen(rs, provinces[p], NULL, btypes[b], ptypes[t], NULL, NULL, 0);
  for (int p = 0; ROOM && p < NPROV; p++)
    for (int l = 0; ROOM && l < 4; l++)
      gen(rs, provinces[p], NULL, NULL, NULL, NULL, levels[l], 0);
  for (int p = 0; ROOM && p < NPROV; p++)
    for (int c = 0; ROOM && c < NCITY; c++)
      for (int l = 0; ROOM && l < 3; l++)
        city(r, p, c), gen(rs, r, NULL, NULL, NULL, "hotline", levels[l], 0);
  while (ROOM) {
    city(r, pick(NPROV), pick(NCITY));
    gen(rs, pick(2) ? r : provinces[pick(NPROV)], lines[pick(N(lines))], NULL,
        ptypes[pick(N(ptypes))], channels[pick(N(channels))], NULL, pick(5));
  }
  double t1 = now_s();

  enum { NQ = 4096 };
  static routing_query qs[NQ];
  static char regions[NQ][8];
  for (int i = 0; i < NQ; i++) {
    int b = pick(N(btypes));
    sprintf(regions[i], "%s%02d%02d", provinces[pick(NPROV)], 1 + pick(NCITY + 2), 1 + pick(20));
    qs[i] = (routing_query){regions[i],          lines[b < 6 ? 0 : 1], btypes[b],
                            ptypes[pick(N(ptypes))], channels[pick(N(channels))],
                            levels[pick(N(levels))]};
  }
  int wrong = 0;
  for (int i = 0; i < NQ; i++) {
    const char *a = routing_rules_match(rs, &qs[i], NULL), *b = brute(&qs[i]);
    if (!a || !b || strcmp(a, b) != 0) {
      if (wrong++ < 5)
        fprintf(stderr, "mismatch for %s/%s/%s/%s/%s: index %s, scan %s\n", qs[i].region,
                qs[i].business_type, qs[i].problem_type, qs[i].channel, qs[i].customer_level,
                a ? a : "-", b ? b : "-");
    }
  }
  if (wrong) {
    fprintf(stderr, "bench-routing: %d of %d decisions differ from the brute-force scan\n", wrong,
            NQ);
    return 1;
  }

  unsigned long check = 0;
  double t2 = now_s();
  for (long i = 0; i < decisions; i++) {
    const char *u = routing_rules_match(rs, &qs[i & (NQ - 1)], NULL);
    check += (unsigned char)u[1];
  }
  double t3 = now_s();
  double secs = t3 - t2;
  printf("rules: %zu (built in %.1f ms); %d decisions match a brute-force scan\n",
         routing_rules_count(rs), (t1 - t0) * 1e3, NQ);
  printf("decisions: %ld in %.3f s = %.0f decisions/s (%.2f us each) [check %lu]\n", decisions,
         secs, (double)decisions / secs, secs * 1e6 / (double)decisions, check);
  routing_rules_destroy(&rs);
  free(defs);
  return 0;
}
