/*
 * err.h - the project's error codes, generated from one X-macro list.
 *
 * Functions return int: 0 on success, a negative GB_E* code on failure
 * (STYLE.md rule 7).  gb_strerror() gives the short lower-case text.
 */
#ifndef GB_CORE_ERR_H
#define GB_CORE_ERR_H

#define GB_ERRNO_MAP(X)                                                                            \
    X(NOMEM, -1, "out of memory")                                                                  \
    X(TOOBIG, -2, "size limit exceeded")                                                           \
    X(INVAL, -3, "invalid argument")                                                               \
    X(PARSE, -4, "parse error")                                                                    \
    X(AGAIN, -5, "call again")                                                                     \
    X(NOKEY, -6, "no api key configured")                                                          \
    X(BUSY, -7, "no api key usable now")                                                           \
    X(IO, -8, "i/o error")                                                                         \
    X(ABORT, -9, "aborted by callback")

enum gb_err {
#define GB_ERR_ENUM(name, val, msg) GB_E##name = (val),
    GB_ERRNO_MAP(GB_ERR_ENUM)
#undef GB_ERR_ENUM
};

/* Returns a static lower-case message for a GB_E* code ("unknown error" otherwise). */
const char *gb_strerror(int err);

#define GB_UNREACHABLE() __builtin_unreachable()

#endif
