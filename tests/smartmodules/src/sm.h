/* A tiny freestanding implementation of Fluvio's SmartModule ABI (fluvio-smartmodule 0.8, SDK-generated
 * code) for fluvial's test modules: alloc/dealloc, SmartModuleInput at every layout, records, outputs.
 * Everything on the wire is big-endian; varints are zigzag (fluvio-protocol). No libc. */
#ifndef SM_H
#define SM_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef int i32;
typedef unsigned int u32;
typedef long long i64;
typedef unsigned long long u64;
typedef unsigned long usize;

#define EXPORT(name) __attribute__((export_name(name)))
__attribute__((import_module("env"), import_name("copy_records"))) void copy_records(i32 ptr, i32 len);

/* link enum of SmartModuleTransformRuntimeError.kind */
enum { KIND_FILTER = 0, KIND_MAP = 1, KIND_ARRAY_MAP = 2, KIND_AGGREGATE = 3, KIND_FILTER_MAP = 4 };

void *memcpy(void *d, const void *s, usize n) { u8 *a = d; const u8 *b = s; while (n--) *a++ = *b++; return d; }
void *memset(void *d, int c, usize n) { u8 *a = d; while (n--) *a++ = (u8)c; return d; }
static usize sm_strlen(const char *s) { usize n = 0; while (s[n]) n++; return n; }

/* ------------------------------------------------------------------ allocator: power-of-two free lists */
extern u8 __heap_base;
static u8 *heap_top = 0;
static void *free_lists[32];

static void *sm_alloc(u32 n) {
    u32 c = 4;
    while (((u32)1 << c) < n + 8) c++;
    if (free_lists[c]) { void **p = free_lists[c]; free_lists[c] = *p; return p; }
    if (!heap_top) heap_top = &__heap_base;
    u8 *block = (u8 *)(((usize)heap_top + 7) & ~(usize)7);
    usize end = (usize)block + ((usize)1 << c);
    usize have = __builtin_wasm_memory_size(0) * 65536;
    if (end > have) {
        usize pages = (end - have + 65535) / 65536;
        if (__builtin_wasm_memory_grow(0, pages) == (usize)-1) __builtin_trap();   /* as Rust's alloc abort */
    }
    heap_top = (u8 *)end;
    *(u32 *)block = c;
    return block + 8;
}

static void sm_free(void *p) {
    if (!p) return;
    u32 c = *(u32 *)((u8 *)p - 8);
    *(void **)p = free_lists[c];
    free_lists[c] = p;
}

EXPORT("alloc") i32 alloc(i32 len) { return (i32)(usize)sm_alloc((u32)len); }
EXPORT("dealloc") void dealloc(i32 ptr, i32 len) { (void)len; sm_free((void *)(usize)ptr); }

/* ------------------------------------------------------------------------------------------- reading */
typedef struct { const u8 *p, *end; int err; } rd;

static int rd_need(rd *r, u32 n) { if (r->err || (usize)(r->end - r->p) < n) { r->err = 1; return 0; } return 1; }
static u8 rd_u8(rd *r) { if (!rd_need(r, 1)) return 0; return *r->p++; }
static u64 rd_be(rd *r, int n) { u64 v = 0; if (!rd_need(r, n)) return 0; while (n--) v = (v << 8) | *r->p++; return v; }
static i64 rd_varint(rd *r) {
    u64 v = 0; int shift = 0;
    for (int i = 0; i < 10; i++) {
        u8 b = rd_u8(r); if (r->err) return 0;
        v |= (u64)(b & 0x7f) << shift;
        if (!(b & 0x80)) return (i64)(v >> 1) ^ -(i64)(v & 1);
        shift += 7;
    }
    r->err = 1; return 0;
}
static const u8 *rd_bytes(rd *r, u32 n) { if (!rd_need(r, n)) return 0; const u8 *p = r->p; r->p += n; return p; }

/* ------------------------------------------------------------------------------------------- writing */
typedef struct { u8 *buf; u32 len, cap; } wr;
static void wr_reserve(wr *w, u32 n) {
    if (w->len + n <= w->cap) return;
    u32 cap = w->cap ? w->cap : 64;
    while (cap < w->len + n) cap *= 2;
    u8 *b = sm_alloc(cap);
    if (w->buf) { memcpy(b, w->buf, w->len); sm_free(w->buf); }
    w->buf = b; w->cap = cap;
}
static void wr_bytes(wr *w, const void *p, u32 n) { wr_reserve(w, n); memcpy(w->buf + w->len, p, n); w->len += n; }
static void wr_u8(wr *w, u8 v) { wr_bytes(w, &v, 1); }
static void wr_be(wr *w, u64 v, int n) { u8 t[8]; for (int i = n - 1; i >= 0; i--) { t[i] = (u8)v; v >>= 8; } wr_bytes(w, t, n); }
static void wr_varint(wr *w, i64 n) {
    u64 v = ((u64)n << 1) ^ (u64)(n >> 63);
    while (v & ~(u64)0x7f) { wr_u8(w, (u8)((v & 0x7f) | 0x80)); v >>= 7; }
    wr_u8(w, (u8)v);
}
static int varint_size(i64 n) { u64 v = ((u64)n << 1) ^ (u64)(n >> 63); int s = 1; while (v >= 0x80) { v >>= 7; s++; } return s; }
static void wr_string(wr *w, const char *s, u32 n) { wr_be(w, n, 2); wr_bytes(w, s, n); }

/* ------------------------------------------------------------------------------------------- records */
typedef struct {
    i64 attributes, ts_delta, offset_delta, headers;
    int has_key;
    const u8 *key; u32 klen;
    const u8 *val; u32 vlen;
} rec;

static int rd_record(rd *r, rec *out) {
    i64 len = rd_varint(r);
    if (r->err || len < 0 || (usize)(r->end - r->p) < (usize)len) { r->err = 1; return 0; }
    out->attributes = (signed char)rd_u8(r);
    out->ts_delta = rd_varint(r);
    out->offset_delta = rd_varint(r);
    out->has_key = rd_u8(r);
    if (out->has_key > 1) { r->err = 1; return 0; }
    if (out->has_key) { i64 k = rd_varint(r); out->klen = (u32)k; out->key = rd_bytes(r, (u32)k); }
    else { out->klen = 0; out->key = 0; }
    i64 v = rd_varint(r); out->vlen = (u32)v; out->val = rd_bytes(r, (u32)v);
    out->headers = rd_varint(r);
    return !r->err;
}

static void wr_record(wr *w, const rec *in, const u8 *val, u32 vlen) {
    i64 body = 1 + varint_size(in->ts_delta) + varint_size(in->offset_delta) + 1
             + (in->has_key ? varint_size(in->klen) + in->klen : 0) + varint_size(vlen) + vlen + varint_size(in->headers);
    wr_varint(w, body);
    wr_u8(w, (u8)in->attributes);
    wr_varint(w, in->ts_delta);
    wr_varint(w, in->offset_delta);
    wr_u8(w, (u8)in->has_key);
    if (in->has_key) { wr_varint(w, in->klen); wr_bytes(w, in->key, in->klen); }
    wr_varint(w, vlen); wr_bytes(w, val, vlen);
    wr_varint(w, in->headers);
}

/* a new record (Record::new_key_value): all deltas 0, no key */
static void wr_new_record(wr *w, const u8 *val, u32 vlen) {
    rec blank = {0};
    wr_record(w, &blank, val, vlen);
}

/* ----------------------------------------------------------------------------------------- params */
#define MAX_PARAMS 8
typedef struct { const u8 *k; u32 klen; const u8 *v; u32 vlen; } param;
typedef struct { param p[MAX_PARAMS]; u32 n; } params;

static void rd_params(rd *r, params *out, i32 version) {   /* SmartModuleExtraParams */
    u32 n = (u32)rd_be(r, 2);
    out->n = 0;
    for (u32 i = 0; i < n && !r->err; i++) {
        u32 kl = (u32)rd_be(r, 2); const u8 *k = rd_bytes(r, kl);
        u32 vl = (u32)rd_be(r, 2); const u8 *v = rd_bytes(r, vl);
        if (out->n < MAX_PARAMS) { param *p = &out->p[out->n++]; p->k = k; p->klen = kl; p->v = v; p->vlen = vl; }
    }
    if (version >= 20 && rd_u8(r) == 1) {          /* lookback: Option<{last u64, age Option<Duration> (v21)}> */
        rd_be(r, 8);
        if (version >= 21 && rd_u8(r) == 1) { rd_be(r, 8); rd_be(r, 4); }
    }
}

static int param_get(const params *ps, const char *key, const u8 **v, u32 *vlen) {
    usize kl = sm_strlen(key);
    for (u32 i = 0; i < ps->n; i++) {
        const param *p = &ps->p[i];
        if (p->klen != kl) continue;
        usize j = 0; while (j < kl && p->k[j] == (u8)key[j]) j++;
        if (j == kl) { *v = p->v; *vlen = p->vlen; return 1; }
    }
    return 0;
}

/* SmartModuleInput: base_offset | raw_bytes | params (<=22) | join (16..=22) | base_timestamp (>=22) */
typedef struct { i64 base_offset, base_timestamp; rd records; u32 count; params ps; } input;

static int rd_input(rd *r, input *in, i32 version) {
    in->base_offset = (i64)rd_be(r, 8);
    i32 n = (i32)rd_be(r, 4);
    const u8 *raw = rd_bytes(r, n > 0 ? (u32)n : 0);
    if (version <= 22) rd_params(r, &in->ps, version); else in->ps.n = 0;
    if (version >= 16 && version <= 22) { i32 j = (i32)rd_be(r, 4); rd_bytes(r, j > 0 ? (u32)j : 0); }
    in->base_timestamp = version >= 22 ? (i64)rd_be(r, 8) : 0;
    if (r->err) return 0;
    in->records.p = raw; in->records.end = raw + (n > 0 ? n : 0); in->records.err = 0;
    in->count = n >= 4 ? (u32)rd_be(&in->records, 4) : 0;
    return !in->records.err;
}

/* --------------------------------------------------------------------------------- transform driver */
/* A module's per-record hook: write 0..n records to `out` and add them to *count; return 0, or -1 with
 * *hint set to report a SmartModuleTransformRuntimeError for this record. */
typedef int (*record_hook)(const rec *r, wr *out, u32 *count, const char **hint);

/* the aggregate accumulator, host-owned between calls */
static u8 *acc_buf = 0;
static u32 acc_len = 0;
static void acc_set(const u8 *p, u32 n) { u8 *b = sm_alloc(n ? n : 1); memcpy(b, p, n); sm_free(acc_buf); acc_buf = b; acc_len = n; }

static i32 run_transform(i32 ptr, i32 len, i32 version, int kind, int aggregate, record_hook hook) {
    rd r = {(const u8 *)(usize)ptr, (const u8 *)(usize)ptr + len, 0};
    input in;
    if (!rd_input(&r, &in, version)) { sm_free((void *)(usize)ptr); return -11; }
    if (aggregate) {
        i32 n = (i32)rd_be(&r, 4); const u8 *a = rd_bytes(&r, n > 0 ? (u32)n : 0);
        if (r.err) { sm_free((void *)(usize)ptr); return -11; }
        acc_set(a, n > 0 ? (u32)n : 0);
    }
    wr recs = {0}; u32 count = 0;
    const char *hint = 0; rec bad;
    for (u32 i = 0; i < in.count; i++) {
        rec one;
        if (!rd_record(&in.records, &one)) { sm_free(recs.buf); sm_free((void *)(usize)ptr); return -22; }
        if (hook(&one, &recs, &count, &hint) < 0) { bad = one; break; }
    }
    wr out = {0};
    wr_be(&out, count, 4);
    if (recs.len) wr_bytes(&out, recs.buf, recs.len);
    sm_free(recs.buf);
    if (hint) {                                     /* Some(SmartModuleTransformRuntimeError) */
        wr_u8(&out, 1);
        wr_string(&out, hint, (u32)sm_strlen(hint));
        wr_be(&out, (u64)(in.base_offset + bad.offset_delta), 8);
        wr_u8(&out, (u8)kind);
        wr_u8(&out, (u8)bad.has_key);
        if (bad.has_key) { wr_varint(&out, bad.klen); wr_bytes(&out, bad.key, bad.klen); }
        wr_varint(&out, bad.vlen); wr_bytes(&out, bad.val, bad.vlen);
    } else {
        wr_u8(&out, 0);
    }
    if (aggregate && version >= 16) { wr_be(&out, acc_len, 4); wr_bytes(&out, acc_buf, acc_len); }
    sm_free((void *)(usize)ptr);                     /* the module owns its input */
    copy_records((i32)(usize)out.buf, (i32)out.len);  /* the output is left for the host to dealloc */
    return (i32)count;
}

/* init: SmartModuleInitInput { params } ; on failure -2 and SmartModuleInitOutput { error: { hint } } */
static i32 run_init(i32 ptr, i32 len, i32 version, const char *(*hook)(const params *)) {
    rd r = {(const u8 *)(usize)ptr, (const u8 *)(usize)ptr + len, 0};
    params ps;
    rd_params(&r, &ps, version);
    if (r.err) { sm_free((void *)(usize)ptr); return -10; }
    const char *err = hook(&ps);              /* the hook copies what it keeps of the params */
    sm_free((void *)(usize)ptr);
    if (err) {
        wr out = {0};
        wr_string(&out, err, (u32)sm_strlen(err));
        copy_records((i32)(usize)out.buf, (i32)out.len);
        return -2;
    }
    return 0;
}

static u8 *copy_bytes(const u8 *p, u32 n) { u8 *b = sm_alloc(n ? n : 1); memcpy(b, p, n); return b; }

static int contains(const u8 *hay, u32 hn, const u8 *needle, u32 nn) {
    if (nn == 0) return 1;
    for (u32 i = 0; i + nn <= hn; i++) {
        u32 j = 0; while (j < nn && hay[i + j] == needle[j]) j++;
        if (j == nn) return 1;
    }
    return 0;
}

#endif
