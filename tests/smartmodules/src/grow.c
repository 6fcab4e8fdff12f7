/* map that allocates without bound on every call (and in init when params has "grow_in_init"): the
 * memory cap must stop it. */
#include "sm.h"

static void grow_forever(void) {
    for (;;) {
        u8 *p = sm_alloc(1u << 20);   /* traps (unreachable) when memory.grow fails */
        p[0] = 1;
    }
}

static const char *on_init(const params *ps) {
    const u8 *v; u32 n;
    if (param_get(ps, "grow_in_init", &v, &n)) grow_forever();
    return 0;
}

static int hog(const rec *r, wr *out, u32 *count, const char **hint) {
    (void)r; (void)out; (void)count; (void)hint;
    grow_forever();
    return 0;
}

EXPORT("init") i32 init(i32 ptr, i32 len, i32 version) { return run_init(ptr, len, version, on_init); }
EXPORT("map") i32 map(i32 ptr, i32 len, i32 version) { return run_transform(ptr, len, version, KIND_MAP, 0, hog); }
