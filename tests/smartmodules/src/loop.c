/* filter that never returns: a runaway module (fluvio#1245). */
#include "sm.h"

EXPORT("filter") i32 filter(i32 ptr, i32 len, i32 version) {
    volatile u32 spin = (u32)(ptr + len + version);
    for (;;) if (++spin == 0) copy_records(0, 0);   /* never: spin starts far from wrapping */
}
