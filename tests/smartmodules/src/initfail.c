/* filter whose init fails without params["key"] (SmartModuleInitError::MissingParam). */
#include "sm.h"

static const char *on_init(const params *ps) {
    const u8 *v; u32 n;
    return param_get(ps, "key", &v, &n) ? 0 : "Missing param key";
}

static int keep(const rec *r, wr *out, u32 *count, const char **hint) {
    (void)hint; wr_record(out, r, r->val, r->vlen); (*count)++; return 0;
}

EXPORT("init") i32 init(i32 ptr, i32 len, i32 version) { return run_init(ptr, len, version, on_init); }
EXPORT("filter") i32 filter(i32 ptr, i32 len, i32 version) { return run_transform(ptr, len, version, KIND_FILTER, 0, keep); }
