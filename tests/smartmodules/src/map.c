/* map: value to ASCII upper case, key kept (Fluvio's examples/map). */
#include "sm.h"

static int upper(const rec *r, wr *out, u32 *count, const char **hint) {
    (void)hint;
    u8 *v = sm_alloc(r->vlen ? r->vlen : 1);
    for (u32 i = 0; i < r->vlen; i++) { u8 c = r->val[i]; v[i] = (c >= 'a' && c <= 'z') ? c - 32 : c; }
    wr_record(out, r, v, r->vlen);
    sm_free(v);
    (*count)++;
    return 0;
}

EXPORT("map") i32 map(i32 ptr, i32 len, i32 version) { return run_transform(ptr, len, version, KIND_MAP, 0, upper); }
