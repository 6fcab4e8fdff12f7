/* map (identity) that imports WASI preview1 and writes a line to stderr per call: a module built with
 * `smdk build --wasi`. */
#include "sm.h"

typedef struct { const u8 *buf; u32 len; } ciovec;
__attribute__((import_module("wasi_snapshot_preview1"), import_name("fd_write")))
i32 fd_write(i32 fd, const ciovec *iovs, i32 n, u32 *written);

static int same(const rec *r, wr *out, u32 *count, const char **hint) {
    (void)hint; wr_record(out, r, r->val, r->vlen); (*count)++; return 0;
}

EXPORT("map") i32 map(i32 ptr, i32 len, i32 version) {
    static const char line[] = "wasi_map: called\n";
    ciovec v = {(const u8 *)line, sizeof line - 1};
    u32 written;
    fd_write(2, &v, 1, &written);
    return run_transform(ptr, len, version, KIND_MAP, 0, same);
}
