/* filter that keeps everything until it meets the value "boom", then traps (a Rust panic is a trap). */
#include "sm.h"

static int keep_or_trap(const rec *r, wr *out, u32 *count, const char **hint) {
    (void)hint;
    if (r->vlen == 4 && r->val[0] == 'b' && r->val[1] == 'o' && r->val[2] == 'o' && r->val[3] == 'm') __builtin_trap();
    wr_record(out, r, r->val, r->vlen);
    (*count)++;
    return 0;
}

EXPORT("filter") i32 filter(i32 ptr, i32 len, i32 version) { return run_transform(ptr, len, version, KIND_FILTER, 0, keep_or_trap); }
