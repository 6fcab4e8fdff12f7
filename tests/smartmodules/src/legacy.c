/* map (upper case) built as modules before fluvio 0.10.14 were: it knows only the input layout without
 * base_timestamp (params and join_record always present), so at v24 it fails to decode: -11. */
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

EXPORT("map") i32 map(i32 ptr, i32 len, i32 version) {
    /* the old layout: base | raw | params | join, and nothing after it */
    rd r = {(const u8 *)(usize)ptr, (const u8 *)(usize)ptr + len, 0};
    rd_be(&r, 8);
    i32 n = (i32)rd_be(&r, 4); rd_bytes(&r, n > 0 ? (u32)n : 0);
    params ps; rd_params(&r, &ps, version > 21 ? 21 : version);
    i32 j = (i32)rd_be(&r, 4); rd_bytes(&r, j > 0 ? (u32)j : 0);
    if (r.err || r.p != r.end) { sm_free((void *)(usize)ptr); return -11; }
    return run_transform(ptr, len, 21, KIND_MAP, 0, upper);
}
