/* filter + init: keep records whose value contains params["key"] (default "a"), as Fluvio's
 * examples/filter_with_param. */
#include "sm.h"

static const u8 *needle = (const u8 *)"a";
static u32 needle_len = 1;

static const char *on_init(const params *ps) {
    const u8 *v; u32 n;
    if (param_get(ps, "key", &v, &n)) { needle = copy_bytes(v, n); needle_len = n; }
    return 0;
}

static int keep(const rec *r, wr *out, u32 *count, const char **hint) {
    (void)hint;
    if (contains(r->val, r->vlen, needle, needle_len)) { wr_record(out, r, r->val, r->vlen); (*count)++; }
    return 0;
}

EXPORT("init") i32 init(i32 ptr, i32 len, i32 version) { return run_init(ptr, len, version, on_init); }
EXPORT("filter") i32 filter(i32 ptr, i32 len, i32 version) { return run_transform(ptr, len, version, KIND_FILTER, 0, keep); }
