/* dedup filter with look_back: values seen in the look-back records or earlier in the stream are
 * dropped. A look-back record with the value "bad" fails look_back (-99 + SmartModuleLookbackOutput). */
#include "sm.h"

#define SEEN_MAX 1024
static u8 *seen[SEEN_MAX]; static u32 seen_len[SEEN_MAX]; static u32 nseen = 0;

static int was_seen(const u8 *v, u32 n) {
    for (u32 i = 0; i < nseen; i++) {
        if (seen_len[i] != n) continue;
        u32 j = 0; while (j < n && seen[i][j] == v[j]) j++;
        if (j == n) return 1;
    }
    return 0;
}
static void remember(const u8 *v, u32 n) { if (nseen < SEEN_MAX) { seen[nseen] = copy_bytes(v, n); seen_len[nseen++] = n; } }

static int dedup(const rec *r, wr *out, u32 *count, const char **hint) {
    (void)hint;
    if (was_seen(r->val, r->vlen)) return 0;
    remember(r->val, r->vlen);
    wr_record(out, r, r->val, r->vlen);
    (*count)++;
    return 0;
}

EXPORT("filter") i32 filter(i32 ptr, i32 len, i32 version) { return run_transform(ptr, len, version, KIND_FILTER, 0, dedup); }

EXPORT("look_back") i32 look_back(i32 ptr, i32 len, i32 version) {
    rd r = {(const u8 *)(usize)ptr, (const u8 *)(usize)ptr + len, 0};
    input in;
    if (!rd_input(&r, &in, version)) return -66;
    for (u32 i = 0; i < in.count; i++) {
        rec one;
        if (!rd_record(&in.records, &one)) return -77;
        if (one.vlen == 3 && one.val[0] == 'b' && one.val[1] == 'a' && one.val[2] == 'd') {
            wr out = {0};                        /* SmartModuleLookbackOutput { error } */
            const char *hint = "bad record in look_back";
            wr_string(&out, hint, (u32)sm_strlen(hint));
            wr_be(&out, (u64)(in.base_offset + one.offset_delta), 8);
            wr_u8(&out, (u8)one.has_key);
            if (one.has_key) { wr_varint(&out, one.klen); wr_bytes(&out, one.key, one.klen); }
            wr_varint(&out, one.vlen); wr_bytes(&out, one.val, one.vlen);
            copy_records((i32)(usize)out.buf, (i32)out.len);
            return -99;
        }
        if (!was_seen(one.val, one.vlen)) remember(one.val, one.vlen);
    }
    return 0;
}
