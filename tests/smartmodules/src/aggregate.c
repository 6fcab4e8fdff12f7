/* aggregate: acc = acc ++ value; each record comes out with value = acc (Fluvio's examples/aggregate). */
#include "sm.h"

static int concat(const rec *r, wr *out, u32 *count, const char **hint) {
    (void)hint;
    u8 *b = sm_alloc(acc_len + r->vlen + 1);
    memcpy(b, acc_buf, acc_len);
    memcpy(b + acc_len, r->val, r->vlen);
    acc_set(b, acc_len + r->vlen);
    sm_free(b);
    wr_record(out, r, acc_buf, acc_len);
    (*count)++;
    return 0;
}

EXPORT("aggregate") i32 aggregate(i32 ptr, i32 len, i32 version) { return run_transform(ptr, len, version, KIND_AGGREGATE, 1, concat); }
