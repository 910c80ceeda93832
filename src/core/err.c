/* err.c - messages for the GB_E* codes of err.h. */
#include "core/err.h"

const char *gb_strerror(int err)
{
    switch (err) {
#define GB_ERR_CASE(name, val, msg)                                                                \
    case (val):                                                                                    \
        return msg;
        GB_ERRNO_MAP(GB_ERR_CASE)
#undef GB_ERR_CASE
    default:
        return "unknown error";
    }
}
