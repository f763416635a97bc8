/*
 * Fast decoder for OTLP/HTTP protobuf trace requests (ExportTraceServiceRequest).
 *
 * Reads the protobuf wire format directly and fills the column buffers of the
 * ``otel_traces`` Arrow table (see collector/spans.py for the reference flattening and
 * collector/fast_decode.py for the Python side that wraps the buffers into Arrow arrays).
 *
 * The input is untrusted network data. Every read is bounds-checked against the end of the
 * enclosing message, nesting is limited exactly as upb limits it, and every string field the
 * schema declares is checked for UTF-8 like upb does, so that this decoder accepts and refuses
 * exactly the bodies ``ExportTraceServiceRequest.FromString`` accepts and refuses.
 *
 * Errors unwind with longjmp to the entry point; every allocation lives in the decode context,
 * so the entry point frees everything on any path.
 *
 * The parse runs without the GIL, so that other threads of the receiver (HTTP, redaction, the
 * store's inserts) run while a body is decoded. Nothing the parse touches belongs to Python: it
 * reads an immutable bytes body and writes malloc'd buffers. The one exception is the text of
 * array and map values, which the reference's Python formatter makes. A body with such values
 * is therefore parsed twice: the first pass records their bytes (in the order it meets them)
 * and writes empty placeholders; then, with the GIL, each is formatted; the second pass, again
 * without the GIL, writes the texts in the same order. Both passes read the same bytes the same
 * way, so they meet the same values in the same order.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* upb refuses a body whose messages (or groups) nest deeper than this below the top level. */
#define MAX_LEVEL 100
/* Arrow string and list offsets are int32; larger columns go to the reference decoder. */
#define MAX_OFFSET INT32_MAX

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_SGROUP = 3, WT_EGROUP = 4, WT_I32 = 5 };

enum {
    ERR_NONE = 0,
    ERR_MALFORMED, /* wire format corrupt: DecodeError */
    ERR_UTF8,      /* a string field is not UTF-8: DecodeError */
    ERR_NOMEM,
    ERR_FALLBACK, /* valid so far, but only the reference decoder can answer it exactly */
};

/*
 * The buffers handed back to Python, in the order fast_decode.py reads them. "_O" buffers are
 * int32 offsets starting with one zero; "_D" their string bytes. A map column is five buffers:
 * map offsets (in entries), key offsets, key bytes, value offsets, value bytes. A list column's
 * element offsets ("_LO") are shared by the columns of one nested group (Events, Links).
 */
#define BUFFERS(X)                                                                      \
    X(TS, 0)                                                                            \
    X(TRACE_O, 1) X(TRACE_D, 0)                                                         \
    X(SPAN_O, 1) X(SPAN_D, 0)                                                           \
    X(PARENT_O, 1) X(PARENT_D, 0)                                                       \
    X(STATE_O, 1) X(STATE_D, 0)                                                         \
    X(NAME_O, 1) X(NAME_D, 0)                                                           \
    X(KIND_O, 1) X(KIND_D, 0)                                                           \
    X(SERVICE_O, 1) X(SERVICE_D, 0)                                                     \
    X(RATTR, 1) X(RATTR_KO, 1) X(RATTR_KD, 0) X(RATTR_VO, 1) X(RATTR_VD, 0)             \
    X(SCOPE_O, 1) X(SCOPE_D, 0)                                                         \
    X(SCOPEV_O, 1) X(SCOPEV_D, 0)                                                       \
    X(SATTR, 1) X(SATTR_KO, 1) X(SATTR_KD, 0) X(SATTR_VO, 1) X(SATTR_VD, 0)             \
    X(DURATION, 0)                                                                      \
    X(CODE_O, 1) X(CODE_D, 0)                                                           \
    X(MSG_O, 1) X(MSG_D, 0)                                                             \
    X(EV_LO, 1)                                                                         \
    X(EV_TS, 0)                                                                         \
    X(EV_NAME_O, 1) X(EV_NAME_D, 0)                                                     \
    X(EV_ATTR, 1) X(EV_ATTR_KO, 1) X(EV_ATTR_KD, 0) X(EV_ATTR_VO, 1) X(EV_ATTR_VD, 0)   \
    X(LN_LO, 1)                                                                         \
    X(LN_TRACE_O, 1) X(LN_TRACE_D, 0)                                                   \
    X(LN_SPAN_O, 1) X(LN_SPAN_D, 0)                                                     \
    X(LN_STATE_O, 1) X(LN_STATE_D, 0)                                                   \
    X(LN_ATTR, 1) X(LN_ATTR_KO, 1) X(LN_ATTR_KD, 0) X(LN_ATTR_VO, 1) X(LN_ATTR_VD, 0)

#define AS_ENUM(name, is_offsets) B_##name,
#define AS_FLAG(name, is_offsets) is_offsets,
enum {
    BUFFERS(AS_ENUM) N_OUT,
    /* Scratch, not returned: the attributes of the current resource, as one map. */
    B_RES = N_OUT,
    B_RES_KO,
    B_RES_KD,
    B_RES_VO,
    B_RES_VD,
    N_BUF
};
static const char starts_with_offset[N_BUF] = {BUFFERS(AS_FLAG) 1, 1, 0, 1, 0};

/* A string column is named by its offsets buffer (bytes follow); a map by its first buffer. */
#define STR_DATA(col) ((col) + 1)
#define MAP_KEYS(map) ((map) + 1)
#define MAP_VALUES(map) ((map) + 3)

typedef struct {
    char *p;
    size_t len, cap;
} Buf;

typedef struct {
    const uint8_t *p, *end;
} Reader;

typedef struct {
    const uint8_t *p;
    size_t n;
} Slice;

/* Which member of AnyValue's oneof is set (the last one on the wire, as protobuf merges). */
enum { AV_NONE, AV_STRING, AV_BOOL, AV_INT, AV_DOUBLE, AV_ARRAY, AV_KVLIST, AV_BYTES, AV_STRINDEX };

typedef struct {
    int kind;
    Slice s;    /* string or bytes */
    uint64_t u; /* bool, int, double bits */
} AnyState;

typedef struct {
    Slice key;
    AnyState value;
} KeyValueState;

typedef struct {
    Slice trace_id, span_id, parent_id, trace_state, name, status_message;
    int32_t kind, code;
    uint64_t start, end;
    int late_time; /* an event time past int64, which the reference cannot store */
    /* The first link whose id has a wrong length, checked after the span's own ids. */
    const char *bad_link_what;
    size_t bad_link_len;
    int bad_link_size;
} SpanState;

typedef struct {
    jmp_buf unwind;
    int err;
    Buf b[N_BUF];
    /* Array and map values met by the first pass: value k is made of the byte ranges
     * deferred[deferred_end[k - 1] .. deferred_end[k]) (several when the field repeats). */
    Slice *deferred;
    size_t n_deferred, cap_deferred;
    size_t *deferred_end;
    size_t n_deferred_values, cap_deferred_end;
    /* Their texts for the second pass, one after another; text k ends at text_end[k]. */
    int have_texts;
    char *texts;
    size_t *text_end;
    size_t next_text;
    /* Every occurrence of the current attribute's value field; protobuf merges them. */
    Slice *values;
    size_t n_values, cap_values;
    /* Scratch for removing repeated attribute keys. */
    size_t *index;
    size_t cap_index;
    char *bytes;
    size_t cap_bytes;
    /* The first span with an id of the wrong length; raised only if the body is well formed. */
    int invalid;
    const char *invalid_what;
    size_t invalid_len;
    int invalid_size;
    Slice invalid_name;
    long rejected;
    int reasons; /* 1: empty/zero trace id, 2: empty/zero span id */
    /* The current resource and scope, repeated on each of their spans. */
    Slice service_name;
    Slice scope_name, scope_version;
} Ctx;

static void fail(Ctx *c, int err) {
    c->err = err;
    longjmp(c->unwind, 1);
}

/* ---- growable buffers ------------------------------------------------------------------ */

/* Grows an array of ``item``-sized elements to hold ``need``; NULL (nothing changed) if it
 * cannot. */
static void *grow_items_or_null(void *p, size_t *cap, size_t need, size_t item) {
    if (need <= *cap) return p;
    size_t cap2 = *cap ? *cap : 64;
    while (cap2 < need) {
        if (cap2 > SIZE_MAX / 2 / item) return NULL;
        cap2 *= 2;
    }
    void *q = realloc(p, cap2 * item);
    if (!q) return NULL;
    *cap = cap2;
    return q;
}

static void *grow_or_null(void *p, size_t *cap, size_t need) {
    return grow_items_or_null(p, cap, need, 1);
}

static void *grow(Ctx *c, void *p, size_t *cap, size_t need, size_t item) {
    void *q = grow_items_or_null(p, cap, need, item);
    if (!q) fail(c, ERR_NOMEM);
    return q;
}

static inline char *reserve(Ctx *c, int id, size_t extra) {
    Buf *b = &c->b[id];
    if (b->cap - b->len < extra) {
        if (extra > SIZE_MAX - b->len) fail(c, ERR_NOMEM);
        b->p = grow(c, b->p, &b->cap, b->len + extra, 1);
    }
    return b->p + b->len;
}

static inline void push_i64(Ctx *c, int id, uint64_t v) {
    char *w = reserve(c, id, 8);
    memcpy(w, &v, 8);
    c->b[id].len += 8;
}

/* Appends one int32 offset; a count beyond int32 cannot be an Arrow offset. */
static inline void push_offset(Ctx *c, int id, size_t v) {
    if (v > MAX_OFFSET) fail(c, ERR_FALLBACK);
    int32_t o = (int32_t)v;
    char *w = reserve(c, id, 4);
    memcpy(w, &o, 4);
    c->b[id].len += 4;
}

static inline size_t count_of(Ctx *c, int offsets_id) { return c->b[offsets_id].len / 4 - 1; }

static inline int32_t offset_at(Ctx *c, int offsets_id, size_t i) {
    int32_t o;
    memcpy(&o, c->b[offsets_id].p + 4 * i, 4);
    return o;
}

/* Ends a string of a string column whose bytes were written already. */
static inline void end_string(Ctx *c, int col) { push_offset(c, col, c->b[STR_DATA(col)].len); }

static inline void push_string(Ctx *c, int col, const void *p, size_t n) {
    char *w = reserve(c, STR_DATA(col), n);
    if (n) memcpy(w, p, n);
    c->b[STR_DATA(col)].len += n;
    end_string(c, col);
}

static inline void push_cstring(Ctx *c, int col, const char *s) { push_string(c, col, s, strlen(s)); }

static void push_hex(Ctx *c, int col, Slice s) {
    static const char digits[] = "0123456789abcdef";
    char *w = reserve(c, STR_DATA(col), 2 * s.n);
    for (size_t i = 0; i < s.n; i++) {
        w[2 * i] = digits[s.p[i] >> 4];
        w[2 * i + 1] = digits[s.p[i] & 15];
    }
    c->b[STR_DATA(col)].len += 2 * s.n;
    end_string(c, col);
}

/* ---- wire format ----------------------------------------------------------------------- */

static inline uint64_t read_varint(Ctx *c, Reader *r) {
    const uint8_t *p = r->p;
    uint64_t v = 0;
    /* At most ten bytes; bits beyond 64 are dropped, as upb drops them. */
    for (int i = 0; i < 10; i++) {
        if (p + i >= r->end) fail(c, ERR_MALFORMED);
        uint8_t byte = p[i];
        v |= (uint64_t)(byte & 0x7f) << (7 * i);
        if (!(byte & 0x80)) {
            r->p = p + i + 1;
            return v;
        }
    }
    fail(c, ERR_MALFORMED);
    return 0;
}

static inline void read_tag(Ctx *c, Reader *r, uint32_t *field, int *wire_type) {
    uint64_t tag;
    if (r->p < r->end && r->p[0] < 0x80) {
        tag = *r->p++;
    } else {
        const uint8_t *start = r->p;
        tag = read_varint(c, r);
        /* upb takes a tag of at most five bytes that fits 32 bits. */
        if (r->p - start > 5 || tag > UINT32_MAX) fail(c, ERR_MALFORMED);
    }
    *field = (uint32_t)(tag >> 3);
    *wire_type = (int)(tag & 7);
    if (*field == 0 || *wire_type > WT_I32) fail(c, ERR_MALFORMED);
}

static inline uint64_t read_fixed(Ctx *c, Reader *r, int size) {
    if (r->end - r->p < size) fail(c, ERR_MALFORMED);
    uint64_t v = 0;
    for (int i = size - 1; i >= 0; i--) v = (v << 8) | r->p[i];
    r->p += size;
    return v;
}

static inline Slice read_len(Ctx *c, Reader *r) {
    uint64_t n = read_varint(c, r);
    if (n >= INT32_MAX || n > (uint64_t)(r->end - r->p)) fail(c, ERR_MALFORMED);
    Slice s = {r->p, (size_t)n};
    r->p += n;
    return s;
}

/* A length-delimited sub-message one level below ``level``. */
static inline Reader read_message(Ctx *c, Reader *r, int level) {
    if (level + 1 > MAX_LEVEL) fail(c, ERR_MALFORMED);
    Slice s = read_len(c, r);
    Reader sub = {s.p, s.p + s.n};
    return sub;
}

static void skip_field(Ctx *c, Reader *r, uint32_t field, int wire_type, int level);

/* Skips an unknown group up to its matching end tag; the group is one level deeper. */
static void skip_group(Ctx *c, Reader *r, uint32_t group_field, int level) {
    if (level > MAX_LEVEL) fail(c, ERR_MALFORMED);
    for (;;) {
        if (r->p >= r->end) fail(c, ERR_MALFORMED);
        uint32_t field;
        int wire_type;
        read_tag(c, r, &field, &wire_type);
        if (wire_type == WT_EGROUP) {
            if (field != group_field) fail(c, ERR_MALFORMED);
            return;
        }
        skip_field(c, r, field, wire_type, level);
    }
}

/* Skips a field this decoder does not use (or one with an unexpected wire type, which
 * protobuf keeps as an unknown field rather than refusing). */
static void skip_field(Ctx *c, Reader *r, uint32_t field, int wire_type, int level) {
    switch (wire_type) {
    case WT_VARINT:
        read_varint(c, r);
        return;
    case WT_I64:
        read_fixed(c, r, 8);
        return;
    case WT_LEN:
        read_len(c, r);
        return;
    case WT_SGROUP:
        skip_group(c, r, field, level + 1);
        return;
    case WT_I32:
        read_fixed(c, r, 4);
        return;
    default: /* an end-group tag outside its group */
        fail(c, ERR_MALFORMED);
    }
}

/* Strict UTF-8 as upb checks it: no overlong forms, no surrogates, nothing past U+10FFFF. */
static void check_utf8(Ctx *c, Slice s) {
    const uint8_t *p = s.p, *end = s.p + s.n;
    while (p < end) {
        /* ASCII runs, eight bytes at a time. */
        while (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            if (w & 0x8080808080808080ULL) break;
            p += 8;
        }
        if (p >= end) break;
        uint8_t b = *p;
        if (b < 0x80) {
            p++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xbf; /* bounds of the second byte */
        if (b >= 0xc2 && b <= 0xdf) {
            need = 1;
        } else if (b >= 0xe0 && b <= 0xef) {
            need = 2;
            if (b == 0xe0) lo = 0xa0;
            if (b == 0xed) hi = 0x9f;
        } else if (b >= 0xf0 && b <= 0xf4) {
            need = 3;
            if (b == 0xf0) lo = 0x90;
            if (b == 0xf4) hi = 0x8f;
        } else {
            fail(c, ERR_UTF8);
            return;
        }
        if ((size_t)(end - p) <= need) fail(c, ERR_UTF8);
        if (p[1] < lo || p[1] > hi) fail(c, ERR_UTF8);
        for (size_t i = 2; i <= need; i++)
            if ((p[i] & 0xc0) != 0x80) fail(c, ERR_UTF8);
        p += need + 1;
    }
}

static inline Slice read_string(Ctx *c, Reader *r) {
    Slice s = read_len(c, r);
    check_utf8(c, s);
    return s;
}

/* ---- values ---------------------------------------------------------------------------- */

static void parse_any_value(Ctx *c, Reader r, int level, AnyState *st);

static void validate_key_value(Ctx *c, Reader r, int level);

static void validate_array_value(Ctx *c, Reader r, int level) {
    while (r.p < r.end) {
        uint32_t field;
        int wt;
        read_tag(c, &r, &field, &wt);
        if (field == 1 && wt == WT_LEN) {
            AnyState ignored = {0};
            parse_any_value(c, read_message(c, &r, level), level + 1, &ignored);
        } else {
            skip_field(c, &r, field, wt, level);
        }
    }
}

static void validate_key_value_list(Ctx *c, Reader r, int level) {
    while (r.p < r.end) {
        uint32_t field;
        int wt;
        read_tag(c, &r, &field, &wt);
        if (field == 1 && wt == WT_LEN)
            validate_key_value(c, read_message(c, &r, level), level + 1);
        else
            skip_field(c, &r, field, wt, level);
    }
}

/* Parses (or, for a second occurrence, merges) an AnyValue into ``st``. Arrays and maps are
 * only validated here; their text is made from their bytes by the Python formatter (see the
 * comment at the top of this file). */
static void parse_any_value(Ctx *c, Reader r, int level, AnyState *st) {
    while (r.p < r.end) {
        uint32_t field;
        int wt;
        read_tag(c, &r, &field, &wt);
        switch (field) {
        case 1:
            if (wt != WT_LEN) break;
            st->s = read_string(c, &r);
            st->kind = AV_STRING;
            continue;
        case 2:
        case 3:
        case 8:
            if (wt != WT_VARINT) break;
            st->u = read_varint(c, &r);
            st->kind = field == 2 ? AV_BOOL : field == 3 ? AV_INT : AV_STRINDEX;
            continue;
        case 4:
            if (wt != WT_I64) break;
            st->u = read_fixed(c, &r, 8);
            st->kind = AV_DOUBLE;
            continue;
        case 5:
            if (wt != WT_LEN) break;
            validate_array_value(c, read_message(c, &r, level), level + 1);
            st->kind = AV_ARRAY;
            continue;
        case 6:
            if (wt != WT_LEN) break;
            validate_key_value_list(c, read_message(c, &r, level), level + 1);
            st->kind = AV_KVLIST;
            continue;
        case 7:
            if (wt != WT_LEN) break;
            st->s = read_len(c, &r);
            st->kind = AV_BYTES;
            continue;
        }
        skip_field(c, &r, field, wt, level);
    }
}

/* Parses a KeyValue. With ``record``, keeps every occurrence of its value field so that an
 * array or map value can be handed to Python as one (merged) serialized AnyValue. */
static void parse_key_value(Ctx *c, Reader r, int level, KeyValueState *kv, int record) {
    memset(kv, 0, sizeof *kv);
    if (record) c->n_values = 0;
    while (r.p < r.end) {
        uint32_t field;
        int wt;
        read_tag(c, &r, &field, &wt);
        if (field == 1 && wt == WT_LEN) {
            kv->key = read_string(c, &r);
        } else if (field == 2 && wt == WT_LEN) {
            Reader sub = read_message(c, &r, level);
            if (record) {
                c->values = grow(c, c->values, &c->cap_values, c->n_values + 1, sizeof(Slice));
                c->values[c->n_values].p = sub.p;
                c->values[c->n_values].n = (size_t)(sub.end - sub.p);
                c->n_values++;
            }
            parse_any_value(c, sub, level + 1, &kv->value);
        } else {
            skip_field(c, &r, field, wt, level);
        }
    }
}

static void validate_key_value(Ctx *c, Reader r, int level) {
    KeyValueState ignored;
    parse_key_value(c, r, level, &ignored, 0);
}

/*
 * The common case of shortest_digits, without printing and reading back: ``v`` is m / 10^k for
 * an integer m below 2^50 that does not end in 0 (or k = 0), with k small. Attribute values
 * such as amounts and ratios are nearly always of this kind, and the general search below
 * costs a few microseconds each. Returns 0 when ``v`` is not of this kind.
 *
 * Why the digits of m are the shortest that read back as ``v``: the division of two exact
 * doubles is correctly rounded, so v is the double nearest m * 10^-k and the decimal m * 10^-k
 * reads back as v. As m < 2^50, the spacing of doubles near v is below 10^-k / 4. Any decimal
 * with fewer digits is a multiple of 10^(1-k) (of 10^(z+1) when k = 0 and m ends in z zeros),
 * hence at least 10^-k (10^z) from m * 10^-k and more than half a spacing from v: it cannot
 * read back as v. And m * 10^-k is within an eighth of its last digit of v, so it is also the
 * correctly rounded decimal of that length, which the general search would try first.
 */
static int short_decimal_digits(double v, char *out, int *exp10) {
    static const double powers[] = {1e0, 1e1, 1e2, 1e3, 1e4,  1e5,  1e6,  1e7,  1e8,
                                    1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17};
    const double limit = 1125899906842624.0; /* 2^50 */
    for (int k = 0; k < (int)(sizeof powers / sizeof powers[0]); k++) {
        double scaled = v * powers[k];
        if (scaled >= limit) return 0;
        if (scaled != floor(scaled)) continue;
        uint64_t m = (uint64_t)scaled;
        if ((double)m / powers[k] != v) continue;
        if (k > 0 && m % 10 == 0) return 0; /* the proof above needs a last digit; rare */
        char digits[24];
        int n = 0;
        for (uint64_t rest = m; rest; rest /= 10) digits[n++] = (char)('0' + rest % 10);
        if (n == 0) return 0; /* v > 0, so not reached */
        *exp10 = n - 1 - k;
        int start = 0; /* digits[] is least significant first; drop m's trailing zeros */
        while (digits[start] == '0') start++;
        int kept = n - start;
        for (int i = 0; i < kept; i++) out[i] = digits[n - 1 - i];
        return kept;
    }
    return 0;
}

/* Shortest decimal digits that read back as ``v`` (finite, > 0): writes the digits (no
 * trailing zeros) and returns their count; *exp10 is the exponent of the first digit.
 *
 * For each length the correctly rounded candidate is tried, and also its two neighbours: next
 * to a power of two the round-trip interval is lopsided, and a neighbour can read back where
 * the nearest does not. Candidates are written as "<integer>e<exponent>" so that strtod reads
 * them the same in every locale. */
static int shortest_digits(double v, char *out, int *exp10) {
    int n = short_decimal_digits(v, out, exp10);
    if (n) return n;
    char text[48];
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(text, sizeof text, "%.*e", precision - 1, v);
        /* Digits before the 'e' (skipping the locale's decimal point), then the exponent. */
        uint64_t mantissa = 0;
        const char *p = text;
        for (; *p && *p != 'e'; p++)
            if (*p >= '0' && *p <= '9') mantissa = mantissa * 10 + (uint64_t)(*p - '0');
        if (*p != 'e') return 0;
        int exponent = atoi(p + 1);
        uint64_t low = 1;
        for (int i = 1; i < precision; i++) low *= 10;
        uint64_t high = low * 10; /* mantissas have exactly ``precision`` digits: [low, high) */
        int scale = exponent - (precision - 1);
        /* The nearest first, so that it wins when it reads back. */
        uint64_t cand_m[3] = {mantissa, mantissa + 1, mantissa - 1};
        int cand_s[3] = {scale, scale, scale};
        if (cand_m[1] == high) {
            cand_m[1] = low;
            cand_s[1] = scale + 1;
        }
        if (mantissa == low) {
            cand_m[2] = high - 1;
            cand_s[2] = scale - 1;
        }
        for (int k = 0; k < 3; k++) {
            char probe[48];
            snprintf(probe, sizeof probe, "%llue%d", (unsigned long long)cand_m[k], cand_s[k]);
            if (strtod(probe, NULL) != v) continue;
            char digits[24];
            int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)cand_m[k]);
            int first_exp = cand_s[k] + n - 1;
            while (n > 1 && digits[n - 1] == '0') n--;
            memcpy(out, digits, (size_t)n);
            *exp10 = first_exp;
            return n;
        }
    }
    return 0;
}

/* A double as the reference's format_double writes it (ECMAScript's Number to String, with
 * NaN/+Inf/-Inf). Returns the length written to ``out`` (at least 40 bytes). */
static size_t format_double(double v, char *out) {
    if (v != v) return (size_t)sprintf(out, "NaN");
    if (v == HUGE_VAL) return (size_t)sprintf(out, "+Inf");
    if (v == -HUGE_VAL) return (size_t)sprintf(out, "-Inf");
    char *w = out;
    if (signbit(v)) {
        *w++ = '-';
        v = -v;
    }
    if (v == 0) {
        *w++ = '0';
        return (size_t)(w - out);
    }
    char digits[24];
    int exp10 = 0;
    int n = shortest_digits(v, digits, &exp10);
    if (n == 0) return (size_t)(w - out) + (size_t)sprintf(w, "%.17g", v); /* not reached */
    if (v < 1e-6 || v >= 1e21) {
        *w++ = digits[0];
        if (n > 1) {
            *w++ = '.';
            memcpy(w, digits + 1, (size_t)(n - 1));
            w += n - 1;
        }
        w += sprintf(w, "e%c%d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    } else if (exp10 < 0) {
        *w++ = '0';
        *w++ = '.';
        for (int i = 0; i < -exp10 - 1; i++) *w++ = '0';
        memcpy(w, digits, (size_t)n);
        w += n;
    } else {
        /* exp10 <= 20 here: integer digits, zero padded, then any fraction. */
        for (int i = 0; i <= exp10; i++) *w++ = i < n ? digits[i] : '0';
        if (n > exp10 + 1) {
            *w++ = '.';
            memcpy(w, digits + exp10 + 1, (size_t)(n - exp10 - 1));
            w += n - exp10 - 1;
        }
    }
    return (size_t)(w - out);
}

static void push_base64(Ctx *c, int col, Slice s) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t out_len = (s.n + 2) / 3 * 4;
    char *w = reserve(c, STR_DATA(col), out_len);
    size_t i = 0;
    for (; i + 3 <= s.n; i += 3) {
        uint32_t t = (uint32_t)s.p[i] << 16 | (uint32_t)s.p[i + 1] << 8 | s.p[i + 2];
        *w++ = alphabet[t >> 18];
        *w++ = alphabet[(t >> 12) & 63];
        *w++ = alphabet[(t >> 6) & 63];
        *w++ = alphabet[t & 63];
    }
    if (i < s.n) {
        uint32_t t = (uint32_t)s.p[i] << 16 | (i + 1 < s.n ? (uint32_t)s.p[i + 1] << 8 : 0);
        *w++ = alphabet[t >> 18];
        *w++ = alphabet[(t >> 12) & 63];
        *w++ = i + 1 < s.n ? alphabet[(t >> 6) & 63] : '=';
        *w++ = '=';
    }
    c->b[STR_DATA(col)].len += out_len;
    end_string(c, col);
}

/*
 * Arrays and maps. The first pass keeps the (merged) AnyValue's byte ranges for the Python
 * formatter and writes an empty placeholder; the second writes the formatted text.
 */
static void push_formatted(Ctx *c, int col) {
    if (!c->have_texts) {
        c->deferred = grow(c, c->deferred, &c->cap_deferred, c->n_deferred + c->n_values,
                           sizeof(Slice));
        memcpy(c->deferred + c->n_deferred, c->values, c->n_values * sizeof(Slice));
        c->n_deferred += c->n_values;
        c->deferred_end = grow(c, c->deferred_end, &c->cap_deferred_end,
                               c->n_deferred_values + 1, sizeof(size_t));
        c->deferred_end[c->n_deferred_values++] = c->n_deferred;
        push_string(c, col, "", 0);
        return;
    }
    /* Both passes meet the same values; anything else is a bug, answered by the reference. */
    if (c->next_text >= c->n_deferred_values) fail(c, ERR_FALLBACK);
    size_t k = c->next_text++;
    size_t start = k ? c->text_end[k - 1] : 0;
    push_string(c, col, c->texts + start, c->text_end[k] - start);
}

/* The value's string form, as any_value_to_string gives it. */
static void push_value(Ctx *c, int col, const AnyState *v) {
    char text[48];
    size_t n;
    switch (v->kind) {
    case AV_NONE:
        push_string(c, col, "", 0);
        return;
    case AV_STRING:
        push_string(c, col, v->s.p, v->s.n);
        return;
    case AV_BOOL:
        push_cstring(c, col, v->u ? "true" : "false");
        return;
    case AV_INT: {
        /* Decimal digits from the end; the magnitude as unsigned so INT64_MIN works. */
        int negative = (int64_t)v->u < 0;
        uint64_t magnitude = negative ? 0 - v->u : v->u;
        char *w = text + sizeof text;
        do {
            *--w = (char)('0' + magnitude % 10);
            magnitude /= 10;
        } while (magnitude);
        if (negative) *--w = '-';
        push_string(c, col, w, (size_t)(text + sizeof text - w));
        return;
    }
    case AV_DOUBLE: {
        double d;
        memcpy(&d, &v->u, 8);
        n = format_double(d, text);
        push_string(c, col, text, n);
        return;
    }
    case AV_BYTES:
        push_base64(c, col, v->s);
        return;
    case AV_STRINDEX: /* not a kind the reference knows: its JSON fallback writes null */
        push_cstring(c, col, "null");
        return;
    default: /* AV_ARRAY, AV_KVLIST */
        push_formatted(c, col);
        return;
    }
}

static void push_attribute(Ctx *c, int map, const KeyValueState *kv) {
    push_string(c, MAP_KEYS(map), kv->key.p, kv->key.n);
    push_value(c, MAP_VALUES(map), &kv->value);
}

/* ---- repeated attribute keys ----------------------------------------------------------- */

static inline int same_key(Ctx *c, int keys, size_t i, size_t j) {
    int32_t a = offset_at(c, keys, i), a_end = offset_at(c, keys, i + 1);
    int32_t b = offset_at(c, keys, j), b_end = offset_at(c, keys, j + 1);
    if (a_end - a != b_end - b) return 0;
    const char *data = c->b[STR_DATA(keys)].p;
    return memcmp(data + a, data + b, (size_t)(a_end - a)) == 0;
}

static inline uint64_t key_hash(Ctx *c, int keys, size_t i) {
    int32_t a = offset_at(c, keys, i), a_end = offset_at(c, keys, i + 1);
    const unsigned char *p = (const unsigned char *)c->b[STR_DATA(keys)].p + a;
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (int32_t k = 0; k < a_end - a; k++) h = (h ^ p[k]) * 1099511628211ULL;
    return h;
}

/*
 * Gives the map entries from ``first`` on the reference's dict semantics: a key keeps the
 * position of its first occurrence and the value of its last. The entries are the last ones
 * of the map column, so their bytes can be rewritten in place.
 */
static void dedupe_map(Ctx *c, int map, size_t first) {
    int keys = MAP_KEYS(map), values = MAP_VALUES(map);
    size_t total = count_of(c, keys);
    size_t n = total - first;
    if (n < 2) return;
    /* index[0..n): the first entry with the same key; then last[0..n) and two offset copies */
    c->index = grow(c, c->index, &c->cap_index, 4 * n + 2, sizeof(size_t));
    size_t *first_of = c->index;
    int repeated = 0;
    if (n <= 16) {
        /* Few keys: compare each with the earlier ones, by hash first (keys such as
         * "http.method"/"http.target" often share a length, so lengths alone filter little). */
        uint64_t hash[16];
        for (size_t i = 0; i < n; i++) hash[i] = key_hash(c, keys, first + i);
        for (size_t i = 0; i < n; i++) {
            first_of[i] = i;
            for (size_t j = 0; j < i; j++) {
                if (first_of[j] == j && hash[j] == hash[i] &&
                    same_key(c, keys, first + j, first + i)) {
                    first_of[i] = j;
                    repeated = 1;
                    break;
                }
            }
        }
    } else {
        /* Open addressing over a table of at least 2n slots, kept after the offset copies. */
        size_t slots = 32;
        while (slots < 2 * n) slots *= 2;
        c->index = grow(c, c->index, &c->cap_index, 4 * n + 2 + slots, sizeof(size_t));
        first_of = c->index;
        size_t *table = c->index + 4 * n + 2;
        memset(table, 0, slots * sizeof(size_t));
        for (size_t i = 0; i < n; i++) {
            size_t h = (size_t)key_hash(c, keys, first + i) & (slots - 1);
            first_of[i] = i;
            while (table[h]) {
                size_t j = table[h] - 1;
                if (same_key(c, keys, first + j, first + i)) {
                    first_of[i] = j;
                    repeated = 1;
                    break;
                }
                h = (h + 1) & (slots - 1);
            }
            if (first_of[i] == i) table[h] = i + 1;
        }
    }
    if (!repeated) return;

    size_t *last = first_of + n;
    for (size_t i = 0; i < n; i++) last[i] = i;
    for (size_t i = 0; i < n; i++) last[first_of[i]] = i;
    /* Old offsets, relative to the first entry, since the rewrite overwrites them. */
    size_t *key_off = last + n, *value_off = key_off + n + 1;
    int32_t key_base = offset_at(c, keys, first), value_base = offset_at(c, values, first);
    for (size_t i = 0; i <= n; i++) {
        key_off[i] = (size_t)(offset_at(c, keys, first + i) - key_base);
        value_off[i] = (size_t)(offset_at(c, values, first + i) - value_base);
    }
    size_t key_bytes = key_off[n], value_bytes = value_off[n];
    c->bytes = grow(c, c->bytes, &c->cap_bytes, key_bytes + value_bytes + 1, 1);
    char *kout = c->bytes, *vout = c->bytes + key_bytes;
    const char *kin = c->b[STR_DATA(keys)].p + key_base;
    const char *vin = c->b[STR_DATA(values)].p + value_base;
    size_t kw = 0, vw = 0, kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (first_of[i] != i) continue;
        size_t j = last[i];
        memcpy(kout + kw, kin + key_off[i], key_off[i + 1] - key_off[i]);
        kw += key_off[i + 1] - key_off[i];
        memcpy(vout + vw, vin + value_off[j], value_off[j + 1] - value_off[j]);
        vw += value_off[j + 1] - value_off[j];
        kept++;
        int32_t ko = key_base + (int32_t)kw, vo = value_base + (int32_t)vw;
        memcpy(c->b[keys].p + 4 * (first + kept), &ko, 4);
        memcpy(c->b[values].p + 4 * (first + kept), &vo, 4);
    }
    memcpy(c->b[STR_DATA(keys)].p + key_base, kout, kw);
    memcpy(c->b[STR_DATA(values)].p + value_base, vout, vw);
    c->b[STR_DATA(keys)].len = (size_t)key_base + kw;
    c->b[STR_DATA(values)].len = (size_t)value_base + vw;
    c->b[keys].len = 4 * (first + kept + 1);
    c->b[values].len = 4 * (first + kept + 1);
}

/* Ends one map of a map column: its entries are those from ``first`` on. */
static inline void end_map(Ctx *c, int map, size_t first) {
    dedupe_map(c, map, first);
    push_offset(c, map, count_of(c, MAP_KEYS(map)));
}

/* Appends the current resource's attributes (one map) to a span row. */
static void push_resource_attributes(Ctx *c) {
    for (int part = 0; part < 2; part++) {
        int src = part ? MAP_VALUES(B_RES) : MAP_KEYS(B_RES);
        int dst = part ? MAP_VALUES(B_RATTR) : MAP_KEYS(B_RATTR);
        size_t n = count_of(c, src);
        size_t bytes = c->b[STR_DATA(src)].len;
        size_t base = c->b[STR_DATA(dst)].len;
        if (bytes > MAX_OFFSET || base > MAX_OFFSET - bytes) fail(c, ERR_FALLBACK);
        char *w = reserve(c, STR_DATA(dst), bytes);
        if (bytes) memcpy(w, c->b[STR_DATA(src)].p, bytes);
        c->b[STR_DATA(dst)].len += bytes;
        char *o = reserve(c, dst, 4 * n);
        for (size_t i = 1; i <= n; i++) {
            int32_t v = (int32_t)(base + (size_t)offset_at(c, src, i));
            memcpy(o + 4 * (i - 1), &v, 4);
        }
        c->b[dst].len += 4 * n;
    }
    push_offset(c, B_RATTR, count_of(c, MAP_KEYS(B_RATTR)));
}

/* ---- messages -------------------------------------------------------------------------- */

static void parse_event(Ctx *c, Reader r, int level, SpanState *span) {
    uint64_t time = 0;
    Slice name = {0};
    size_t first = count_of(c, MAP_KEYS(B_EV_ATTR));
    while (r.p < r.end) {
        uint32_t field;
        int wt;
        read_tag(c, &r, &field, &wt);
        if (field == 1 && wt == WT_I64) {
            time = read_fixed(c, &r, 8);
        } else if (field == 2 && wt == WT_LEN) {
            name = read_string(c, &r);
        } else if (field == 3 && wt == WT_LEN) {
            KeyValueState kv;
            parse_key_value(c, read_message(c, &r, level), level + 1, &kv, 1);
            push_attribute(c, B_EV_ATTR, &kv);
        } else {
            skip_field(c, &r, field, wt, level);
        }
    }
    if (time > INT64_MAX) span->late_time = 1;
    push_i64(c, B_EV_TS, time);
    push_string(c, B_EV_NAME_O, name.p, name.n);
    end_map(c, B_EV_ATTR, first);
}

static void parse_link(Ctx *c, Reader r, int level, SpanState *span) {
    Slice trace_id = {0}, span_id = {0}, state = {0};
    size_t first = count_of(c, MAP_KEYS(B_LN_ATTR));
    while (r.p < r.end) {
        uint32_t field;
        int wt;
        read_tag(c, &r, &field, &wt);
        if (field == 1 && wt == WT_LEN) {
            trace_id = read_len(c, &r);
        } else if (field == 2 && wt == WT_LEN) {
            span_id = read_len(c, &r);
        } else if (field == 3 && wt == WT_LEN) {
            state = read_string(c, &r);
        } else if (field == 4 && wt == WT_LEN) {
            KeyValueState kv;
            parse_key_value(c, read_message(c, &r, level), level + 1, &kv, 1);
            push_attribute(c, B_LN_ATTR, &kv);
        } else {
            skip_field(c, &r, field, wt, level);
        }
    }
    if (!span->bad_link_what) {
        if (trace_id.n && trace_id.n != 16) {
            span->bad_link_what = "link trace id";
            span->bad_link_len = trace_id.n;
            span->bad_link_size = 16;
        } else if (span_id.n && span_id.n != 8) {
            span->bad_link_what = "link span id";
            span->bad_link_len = span_id.n;
            span->bad_link_size = 8;
        }
    }
    push_hex(c, B_LN_TRACE_O, trace_id);
    push_hex(c, B_LN_SPAN_O, span_id);
    push_string(c, B_LN_STATE_O, state.p, state.n);
    end_map(c, B_LN_ATTR, first);
}

static void parse_status(Ctx *c, Reader r, int level, SpanState *span) {
    while (r.p < r.end) {
        uint32_t field;
        int wt;
        read_tag(c, &r, &field, &wt);
        if (field == 2 && wt == WT_LEN)
            span->status_message = read_string(c, &r);
        else if (field == 3 && wt == WT_VARINT)
            span->code = (int32_t)(uint32_t)read_varint(c, &r); /* int32 enum, truncated */
        else
            skip_field(c, &r, field, wt, level);
    }
}

static int all_zero(Slice s) {
    for (size_t i = 0; i < s.n; i++)
        if (s.p[i]) return 0;
    return 1;
}

static void parse_span(Ctx *c, Reader r, int level) {
    static const char *const kinds[] = {"Unspecified", "Internal", "Server",
                                        "Client",      "Producer", "Consumer"};
    static const char *const codes[] = {"Unset", "Ok", "Error"};
    SpanState s;
    memset(&s, 0, sizeof s);
    /* Nested lists are written as they come; a refused span takes them back. */
    size_t saved[N_OUT];
    for (int i = 0; i < N_OUT; i++) saved[i] = c->b[i].len;
    size_t first_attr = count_of(c, MAP_KEYS(B_SATTR));

    while (r.p < r.end) {
        uint32_t field;
        int wt;
        read_tag(c, &r, &field, &wt);
        if (wt == WT_LEN) {
            switch (field) {
            case 1:
                s.trace_id = read_len(c, &r);
                continue;
            case 2:
                s.span_id = read_len(c, &r);
                continue;
            case 3:
                s.trace_state = read_string(c, &r);
                continue;
            case 4:
                s.parent_id = read_len(c, &r);
                continue;
            case 5:
                s.name = read_string(c, &r);
                continue;
            case 9: {
                KeyValueState kv;
                parse_key_value(c, read_message(c, &r, level), level + 1, &kv, 1);
                push_attribute(c, B_SATTR, &kv);
                continue;
            }
            case 11:
                parse_event(c, read_message(c, &r, level), level + 1, &s);
                continue;
            case 13:
                parse_link(c, read_message(c, &r, level), level + 1, &s);
                continue;
            case 15:
                parse_status(c, read_message(c, &r, level), level + 1, &s);
                continue;
            }
        } else if (field == 6 && wt == WT_VARINT) {
            s.kind = (int32_t)(uint32_t)read_varint(c, &r);
            continue;
        } else if ((field == 7 || field == 8) && wt == WT_I64) {
            uint64_t t = read_fixed(c, &r, 8);
            if (field == 7)
                s.start = t;
            else
                s.end = t;
            continue;
        }
        skip_field(c, &r, field, wt, level);
    }

    /* Id checks in the reference's order: a wrong length refuses the whole request. */
    const char *what = NULL;
    size_t bad_len = 0;
    int size = 0;
    if (s.trace_id.n && s.trace_id.n != 16) {
        what = "trace id", bad_len = s.trace_id.n, size = 16;
    } else if (s.span_id.n && s.span_id.n != 8) {
        what = "span id", bad_len = s.span_id.n, size = 8;
    } else if (s.parent_id.n && s.parent_id.n != 8) {
        what = "parent span id", bad_len = s.parent_id.n, size = 8;
    } else if (s.bad_link_what) {
        what = s.bad_link_what, bad_len = s.bad_link_len, size = s.bad_link_size;
    }
    if (what && !c->invalid) {
        c->invalid = 1;
        c->invalid_what = what;
        c->invalid_len = bad_len;
        c->invalid_size = size;
        c->invalid_name = s.name;
    }
    int reason = 0;
    if (!s.trace_id.n || all_zero(s.trace_id))
        reason = 1;
    else if (!s.span_id.n || all_zero(s.span_id))
        reason = 2;
    if (c->invalid || reason) {
        /* Once a request is refused its rows no longer matter; only its validity does. */
        if (!c->invalid) {
            c->rejected++;
            c->reasons |= reason;
        }
        for (int i = 0; i < N_OUT; i++) c->b[i].len = saved[i];
        return;
    }
    /* The reference cannot store times past int64; let it give its own answer. */
    if (s.start > INT64_MAX || s.late_time) fail(c, ERR_FALLBACK);

    push_i64(c, B_TS, s.start);
    push_hex(c, B_TRACE_O, s.trace_id);
    push_hex(c, B_SPAN_O, s.span_id);
    push_hex(c, B_PARENT_O, s.parent_id);
    push_string(c, B_STATE_O, s.trace_state.p, s.trace_state.n);
    push_string(c, B_NAME_O, s.name.p, s.name.n);
    push_cstring(c, B_KIND_O, s.kind >= 0 && s.kind < 6 ? kinds[s.kind] : "");
    push_string(c, B_SERVICE_O, c->service_name.p, c->service_name.n);
    push_resource_attributes(c);
    push_string(c, B_SCOPE_O, c->scope_name.p, c->scope_name.n);
    push_string(c, B_SCOPEV_O, c->scope_version.p, c->scope_version.n);
    end_map(c, B_SATTR, first_attr);
    push_i64(c, B_DURATION, s.end > s.start ? s.end - s.start : 0);
    push_cstring(c, B_CODE_O, s.code >= 0 && s.code < 3 ? codes[s.code] : "");
    push_string(c, B_MSG_O, s.status_message.p, s.status_message.n);
    push_offset(c, B_EV_LO, c->b[B_EV_TS].len / 8);
    push_offset(c, B_LN_LO, count_of(c, B_LN_TRACE_O));
}

static void parse_scope(Ctx *c, Reader r, int level) {
    while (r.p < r.end) {
        uint32_t field;
        int wt;
        read_tag(c, &r, &field, &wt);
        if (field == 1 && wt == WT_LEN)
            c->scope_name = read_string(c, &r);
        else if (field == 2 && wt == WT_LEN)
            c->scope_version = read_string(c, &r);
        else if (field == 3 && wt == WT_LEN)
            validate_key_value(c, read_message(c, &r, level), level + 1);
        else
            skip_field(c, &r, field, wt, level);
    }
}

static void parse_scope_spans(Ctx *c, Reader r, int level) {
    /* The scope may follow its spans on the wire (and may come in parts, which merge), so
     * read it first, then the spans. */
    memset(&c->scope_name, 0, sizeof c->scope_name);
    memset(&c->scope_version, 0, sizeof c->scope_version);
    Reader q = r;
    while (q.p < q.end) {
        uint32_t field;
        int wt;
        read_tag(c, &q, &field, &wt);
        if (field == 1 && wt == WT_LEN)
            parse_scope(c, read_message(c, &q, level), level + 1);
        else if (field == 3 && wt == WT_LEN)
            read_string(c, &q); /* schema_url, unused but checked */
        else
            skip_field(c, &q, field, wt, level);
    }
    q = r;
    while (q.p < q.end) {
        uint32_t field;
        int wt;
        read_tag(c, &q, &field, &wt);
        if (field == 2 && wt == WT_LEN)
            parse_span(c, read_message(c, &q, level), level + 1);
        else
            skip_field(c, &q, field, wt, level);
    }
}

static void validate_entity_ref(Ctx *c, Reader r, int level) {
    while (r.p < r.end) {
        uint32_t field;
        int wt;
        read_tag(c, &r, &field, &wt);
        if (field >= 1 && field <= 4 && wt == WT_LEN)
            read_string(c, &r);
        else
            skip_field(c, &r, field, wt, level);
    }
}

static void parse_resource(Ctx *c, Reader r, int level) {
    while (r.p < r.end) {
        uint32_t field;
        int wt;
        read_tag(c, &r, &field, &wt);
        if (field == 1 && wt == WT_LEN) {
            KeyValueState kv;
            parse_key_value(c, read_message(c, &r, level), level + 1, &kv, 1);
            push_attribute(c, B_RES, &kv);
        } else if (field == 3 && wt == WT_LEN) {
            validate_entity_ref(c, read_message(c, &r, level), level + 1);
        } else {
            skip_field(c, &r, field, wt, level);
        }
    }
}

static void parse_resource_spans(Ctx *c, Reader r, int level) {
    for (int i = B_RES; i < N_BUF; i++) c->b[i].len = starts_with_offset[i] ? 4 : 0;
    /* The resource first (wherever it is on the wire), then its scopes and spans. */
    Reader q = r;
    while (q.p < q.end) {
        uint32_t field;
        int wt;
        read_tag(c, &q, &field, &wt);
        if (field == 1 && wt == WT_LEN)
            parse_resource(c, read_message(c, &q, level), level + 1);
        else if (field == 3 && wt == WT_LEN)
            read_string(c, &q); /* schema_url, unused but checked */
        else
            skip_field(c, &q, field, wt, level);
    }
    dedupe_map(c, B_RES, 0);
    c->service_name.p = NULL;
    c->service_name.n = 0;
    size_t n = count_of(c, MAP_KEYS(B_RES));
    for (size_t i = 0; i < n; i++) {
        int32_t k = offset_at(c, MAP_KEYS(B_RES), i), k_end = offset_at(c, MAP_KEYS(B_RES), i + 1);
        if (k_end - k == 12 && memcmp(c->b[B_RES_KD].p + k, "service.name", 12) == 0) {
            int32_t v = offset_at(c, MAP_VALUES(B_RES), i);
            int32_t v_end = offset_at(c, MAP_VALUES(B_RES), i + 1);
            c->service_name.p = (const uint8_t *)c->b[B_RES_VD].p + v;
            c->service_name.n = (size_t)(v_end - v);
        }
    }
    q = r;
    while (q.p < q.end) {
        uint32_t field;
        int wt;
        read_tag(c, &q, &field, &wt);
        if (field == 2 && wt == WT_LEN)
            parse_scope_spans(c, read_message(c, &q, level), level + 1);
        else
            skip_field(c, &q, field, wt, level);
    }
}

static void parse_request(Ctx *c, Reader r) {
    while (r.p < r.end) {
        uint32_t field;
        int wt;
        read_tag(c, &r, &field, &wt);
        if (field == 1 && wt == WT_LEN)
            parse_resource_spans(c, read_message(c, &r, 0), 1);
        else
            skip_field(c, &r, field, wt, 0);
    }
}

/* ---- Python glue ----------------------------------------------------------------------- */

/* Bytes owned by C, exposed through the buffer protocol so Arrow can wrap them without a
 * copy. */
typedef struct {
    PyObject_HEAD char *data;
    Py_ssize_t size;
} OwnedBuffer;

static int owned_buffer_get(PyObject *self, Py_buffer *view, int flags) {
    OwnedBuffer *b = (OwnedBuffer *)self;
    return PyBuffer_FillInfo(view, self, b->data, b->size, 1, flags);
}

static void owned_buffer_dealloc(PyObject *self) {
    free(((OwnedBuffer *)self)->data);
    Py_TYPE(self)->tp_free(self);
}

static PyBufferProcs owned_buffer_procs = {owned_buffer_get, NULL};

static PyTypeObject OwnedBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "collector._fastotlp.OwnedBuffer",
    .tp_basicsize = sizeof(OwnedBuffer),
    .tp_dealloc = owned_buffer_dealloc,
    .tp_as_buffer = &owned_buffer_procs,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Read-only bytes of one decoded column buffer.",
};

static void free_ctx(Ctx *c) {
    for (int i = 0; i < N_BUF; i++) free(c->b[i].p);
    free(c->values);
    free(c->index);
    free(c->bytes);
    free(c->deferred);
    free(c->deferred_end);
    free(c->texts);
    free(c->text_end);
    free(c);
}

static const char TYPE_NAME[] = "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest";

static PyObject *build_result(Ctx *c) {
    PyObject *buffers = PyTuple_New(N_OUT);
    if (!buffers) return NULL;
    for (int i = 0; i < N_OUT; i++) {
        OwnedBuffer *b = PyObject_New(OwnedBuffer, &OwnedBufferType);
        if (!b) {
            Py_DECREF(buffers);
            return NULL;
        }
        b->data = c->b[i].p; /* ownership moves to the buffer object */
        b->size = (Py_ssize_t)c->b[i].len;
        c->b[i].p = NULL;
        PyTuple_SET_ITEM(buffers, i, (PyObject *)b);
    }
    return Py_BuildValue("(nliN)", (Py_ssize_t)count_of(c, B_TRACE_O), c->rejected, c->reasons,
                         buffers);
}

PyDoc_STRVAR(decode_doc,
             "decode(body, format_value, decode_error, invalid_spans)\n--\n\n"
             "Decode an ExportTraceServiceRequest body into column buffers.\n\n"
             "Returns (rows, rejected_spans, reason_bits, buffers), or None when only the "
             "reference decoder can give the exact answer. Raises decode_error for a body "
             "protobuf would refuse and invalid_spans for an id of the wrong length. "
             "format_value(bytes) -> str formats array and map attribute values.");

/*
 * One parse of the body into the buffers; returns the error code (ERR_NONE on success). Runs
 * without the GIL: it must not touch any Python object, and it keeps no state outside ``c``.
 */
static int parse_pass(Ctx *c, const uint8_t *body, size_t len) {
    /* Everything a previous pass left, except the buffers' memory and the deferred texts. */
    c->err = ERR_NONE;
    c->invalid = 0;
    c->rejected = 0;
    c->reasons = 0;
    c->next_text = 0;
    c->n_values = 0;
    for (int i = 0; i < N_BUF; i++) c->b[i].len = 0;
    if (setjmp(c->unwind) == 0) {
        /* Room for a typical request up front; buffers double as needed. */
        size_t guess = len / 4 + 64;
        for (int i = 0; i < N_BUF; i++) {
            reserve(c, i, guess);
            if (starts_with_offset[i]) push_offset(c, i, 0);
        }
        Reader r = {body, body + len};
        parse_request(c, r);
    }
    return c->err;
}

/* Formats the values the first pass deferred, in order, into c->texts. Needs the GIL; returns
 * -1 with a Python exception set on failure. */
static int format_deferred(Ctx *c, PyObject *formatter) {
    c->text_end = malloc(c->n_deferred_values * sizeof(size_t));
    if (!c->text_end) {
        PyErr_NoMemory();
        return -1;
    }
    size_t cap = 0, used = 0, part = 0;
    for (size_t k = 0; k < c->n_deferred_values; k++) {
        size_t total = 0;
        for (size_t i = part; i < c->deferred_end[k]; i++) total += c->deferred[i].n;
        PyObject *raw = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
        if (!raw) return -1;
        char *w = PyBytes_AS_STRING(raw);
        for (; part < c->deferred_end[k]; part++) {
            memcpy(w, c->deferred[part].p, c->deferred[part].n);
            w += c->deferred[part].n;
        }
        PyObject *text = PyObject_CallOneArg(formatter, raw);
        Py_DECREF(raw);
        if (!text) return -1;
        if (!PyUnicode_Check(text)) {
            Py_DECREF(text);
            PyErr_SetString(PyExc_TypeError, "the value formatter must return str");
            return -1;
        }
        Py_ssize_t n;
        const char *utf8 = PyUnicode_AsUTF8AndSize(text, &n);
        char *grown = NULL;
        if (utf8 && used + (size_t)n >= used)
            grown = grow_or_null(c->texts, &cap, used + (size_t)n + 1);
        if (!grown) {
            if (utf8) PyErr_NoMemory();
            Py_DECREF(text);
            return -1;
        }
        c->texts = grown;
        memcpy(c->texts + used, utf8, (size_t)n);
        used += (size_t)n;
        c->text_end[k] = used;
        Py_DECREF(text);
    }
    c->have_texts = 1;
    return 0;
}

static PyObject *decode(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "decode() takes exactly 4 arguments");
        return NULL;
    }
    PyObject *formatter = args[1], *decode_error = args[2], *invalid_spans = args[3];
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    Ctx *c = calloc(1, sizeof *c);
    if (!c) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    const uint8_t *body = (const uint8_t *)view.buf;
    size_t len = (size_t)view.len;
    /* Only bytes cannot change while the GIL is released (another thread could write into a
     * bytearray, and the two passes must read the same body); anything else keeps the GIL. */
    int release = PyBytes_Check(args[0]);
    int err;
    PyThreadState *saved = release ? PyEval_SaveThread() : NULL;
    err = parse_pass(c, body, len);
    if (saved) PyEval_RestoreThread(saved);

    PyObject *result = NULL;
    if (err == ERR_NONE && !c->invalid && c->n_deferred_values) {
        if (format_deferred(c, formatter) < 0) goto done;
        saved = release ? PyEval_SaveThread() : NULL;
        err = parse_pass(c, body, len);
        if (saved) PyEval_RestoreThread(saved);
    }
    switch (err) {
    case ERR_NONE:
        if (c->invalid) {
            PyObject *name = PyUnicode_DecodeUTF8((const char *)c->invalid_name.p,
                                                  (Py_ssize_t)c->invalid_name.n, "strict");
            if (name) {
                PyObject *message =
                    PyUnicode_FromFormat("Span %R has a %s of %zu bytes; it must be %d bytes.",
                                         name, c->invalid_what, c->invalid_len, c->invalid_size);
                if (message) {
                    PyErr_SetObject(invalid_spans, message);
                    Py_DECREF(message);
                }
                Py_DECREF(name);
            }
        } else {
            result = build_result(c);
        }
        break;
    case ERR_MALFORMED:
        PyErr_Format(decode_error, "Error parsing message with type '%s': Wire format was corrupt",
                     TYPE_NAME);
        break;
    case ERR_UTF8:
        PyErr_Format(decode_error, "Error parsing message with type '%s': String field had bad UTF-8",
                     TYPE_NAME);
        break;
    case ERR_NOMEM:
        PyErr_NoMemory();
        break;
    case ERR_FALLBACK:
        result = Py_NewRef(Py_None);
        break;
    }
done:
    free_ctx(c);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"decode", (PyCFunction)(void (*)(void))decode, METH_FASTCALL, decode_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "collector._fastotlp",
    .m_doc = "Direct protobuf decoding of OTLP trace requests into column buffers.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__fastotlp(void) {
    if (PyType_Ready(&OwnedBufferType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (!m) return NULL;
    if (PyModule_AddIntConstant(m, "N_BUFFERS", N_OUT) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
