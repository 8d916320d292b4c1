/* utf8 — strict UTF-8 validation (no overlongs, no surrogates, ≤ U+10FFFF). */
#ifndef KESU_UTF8_H
#define KESU_UTF8_H
#include <stdbool.h>
#include <stddef.h>
bool utf8_valid(const unsigned char *s, size_t len);
/* Number of code points in a valid UTF-8 string. */
size_t utf8_length(const char *s);
#endif
