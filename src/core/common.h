/*
 * common.h -- attributes and small macros shared by every module.
 *
 * This header holds no types and no state: only compiler attributes
 * (pgbouncer's _MUSTCHECK, tmux's printflike) and array helpers.
 */
#ifndef TS_COMMON_H
#define TS_COMMON_H

#define TS_MUSTCHECK __attribute__((warn_unused_result))
#define TS_PRINTFLIKE(a, b) __attribute__((format(printf, a, b)))
#define TS_NORETURN __attribute__((noreturn))
#define TS_UNUSED __attribute__((unused))
#define TS_FALLTHROUGH __attribute__((fallthrough))

#define TS_NITEMS(a) (sizeof(a) / sizeof((a)[0]))
#define TS_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TS_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif /* TS_COMMON_H */
