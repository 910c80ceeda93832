/*
 * admin.h - the admin side: the status page (/admin), its JSON API (/api/...)
 * and the Prometheus endpoint (/metrics).
 *
 * Admin means AUTH_TOKEN only (which defaults to the first client token when
 * unset): a caller proves it with "Authorization: Bearer <AUTH_TOKEN>" or
 * with the session cookie /api/login sets.  The cookie holds a random
 * session id, never the token; it is HttpOnly and SameSite=Strict.  Keys in
 * answers are masked, except from the explicit export.
 */
#ifndef GB_ADMIN_ADMIN_H
#define GB_ADMIN_ADMIN_H

#include "server/req.h"

/* Sessions kept at once; the oldest goes first. */
#define GB_ADMIN_SESSIONS 64
/* A session's life, in seconds. */
#define GB_ADMIN_SESSION_S (12 * 3600)
/* Wrong logins per minute before logins are refused for the rest of it. */
#define GB_ADMIN_LOGIN_FAILS 10
/* Keys accepted in one add request. */
#define GB_ADMIN_ADD_MAX 10000

/* 1 when path is served here (/admin..., /keys, /api/..., /metrics). */
int gb_admin_owns(const char *path);

/* Handles a request gb_admin_owns() accepted; ends it. */
void gb_admin_handle(struct gb_req *r, int is_post, int is_delete);

#endif
