/* array_map: a JSON array becomes one record per element, each element's text as is (Fluvio's
 * examples/array_map_json_array, which re-serializes each element). New records: deltas 0, no key. */
#include "sm.h"

static int is_space(u8 c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int explode(const rec *r, wr *out, u32 *count, const char **hint) {
    const u8 *p = r->val, *end = r->val + r->vlen;
    while (p < end && is_space(*p)) p++;
    while (end > p && is_space(end[-1])) end--;
    if (p >= end || *p != '[' || end[-1] != ']') { *hint = "expected a JSON array"; return -1; }
    p++; end--;
    int depth = 0, in_str = 0;
    const u8 *start = p;
    for (const u8 *q = p; q <= end; q++) {
        if (q < end && in_str) { if (*q == '\\') q++; else if (*q == '"') in_str = 0; continue; }
        if (q < end && *q == '"') { in_str = 1; continue; }
        if (q < end && (*q == '[' || *q == '{')) { depth++; continue; }
        if (q < end && (*q == ']' || *q == '}')) { depth--; continue; }
        if (q == end || (*q == ',' && depth == 0)) {
            const u8 *a = start, *b = q;
            while (a < b && is_space(*a)) a++;
            while (b > a && is_space(b[-1])) b--;
            if (b > a) { wr_new_record(out, a, (u32)(b - a)); (*count)++; }
            else if (q != end || *count) { *hint = "empty JSON array element"; return -1; }
            start = q + 1;
        }
    }
    return 0;
}

EXPORT("array_map") i32 array_map(i32 ptr, i32 len, i32 version) { return run_transform(ptr, len, version, KIND_ARRAY_MAP, 0, explode); }
