/* priority — R-15 order priority, one definition for the router (its queues) and the
 * handler (its queue's sort key). */
#ifndef KESU_PRIORITY_H
#define KESU_PRIORITY_H
#include <stdbool.h>

#include "envelope.h"

/* Importance — VIP/3G customer levels (vip, diamond, gold, silver, 3g) or the VIP sub-level
 * 10 — + gravity 5 + urgency 4 + breadth 3 + tier (national 3, provincial 2, general 1).
 * Higher goes first. */
int order_priority(const Kesu__V1__Complaint *c);
bool level_is_vip(const char *level);
#endif
