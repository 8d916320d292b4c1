/* utf8 — strict validation per RFC 3629 (Table 3-7 of the Unicode standard). */
#include "utf8.h"

bool utf8_valid(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned char c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      need = 1;
    } else if (c == 0xE0) {
      need = 2, lo = 0xA0;
    } else if (c >= 0xE1 && c <= 0xEC) {
      need = 2;
    } else if (c == 0xED) {
      need = 2, hi = 0x9F; /* no surrogates */
    } else if (c >= 0xEE && c <= 0xEF) {
      need = 2;
    } else if (c == 0xF0) {
      need = 3, lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
      need = 3;
    } else if (c == 0xF4) {
      need = 3, hi = 0x8F; /* ≤ U+10FFFF */
    } else {
      return false; /* continuation byte, overlong lead C0/C1, or F5..FF */
    }
    if (len - i <= need) return false;
    if (s[i + 1] < lo || s[i + 1] > hi) return false;
    for (size_t k = 2; k <= need; k++)
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return false;
    i += need + 1;
  }
  return true;
}

size_t utf8_length(const char *s) {
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if ((*p & 0xC0) != 0x80) n++;
  return n;
}
