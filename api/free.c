/* Strings the library returns are malloc'ed here: freed here too, so a
 * caller with another allocator (another C runtime) frees them correctly. */
#include <stdlib.h>

#include "include/xfquant.h"

XF_API void xf_free(void *p) { free(p); }
