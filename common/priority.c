/* priority — see priority.h. */
#include "priority.h"

#include <strings.h>

bool level_is_vip(const char *level) {
  static const char *const vip[] = {"vip", "diamond", "gold", "silver", "3g", NULL};
  for (int i = 0; level && vip[i]; i++)
    if (strcasecmp(level, vip[i]) == 0)
      return true;
  return false;
}

int order_priority(const Kesu__V1__Complaint *c) {
  int p = c->tier == KESU__V1__TIER__NATIONAL     ? 3
          : c->tier == KESU__V1__TIER__PROVINCIAL ? 2
                                                  : 1;
  const char *level = c->customer && c->customer->level ? c->customer->level : "";
  if (level_is_vip(level) || c->vip)
    p += 10;
  if (c->gravity)
    p += 5;
  if (c->urgency)
    p += 4;
  if (c->breadth)
    p += 3;
  return p;
}
