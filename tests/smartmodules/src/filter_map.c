/* filter_map: an even integer becomes half of it, an odd one is dropped, anything else is an error
 * record with Rust's ParseIntError text (Fluvio's examples/filter_map). */
#include "sm.h"

static int half_even(const rec *r, wr *out, u32 *count, const char **hint) {
    if (r->vlen == 0) { *hint = "cannot parse integer from empty string"; return -1; }
    u32 i = 0; int neg = 0; i64 n = 0;
    if (r->val[0] == '-' || r->val[0] == '+') { neg = r->val[0] == '-'; i = 1; if (r->vlen == 1) { *hint = "invalid digit found in string"; return -1; } }
    for (; i < r->vlen; i++) {
        u8 c = r->val[i];
        if (c < '0' || c > '9') { *hint = "invalid digit found in string"; return -1; }
        n = n * 10 + (c - '0');
    }
    if (neg) n = -n;
    if (n % 2 != 0) return 0;
    n /= 2;
    char buf[24]; int p = 23; buf[p] = 0;
    u64 m = n < 0 ? (u64)-n : (u64)n;
    do { buf[--p] = (char)('0' + m % 10); m /= 10; } while (m);
    if (n < 0) buf[--p] = '-';
    wr_record(out, r, (const u8 *)buf + p, (u32)(23 - p));
    (*count)++;
    return 0;
}

EXPORT("filter_map") i32 filter_map(i32 ptr, i32 len, i32 version) { return run_transform(ptr, len, version, KIND_FILTER_MAP, 0, half_even); }
