/*
 * keystore.h - the bridge between the key pool and the store: persist key
 * state changes, restore them at start-up.
 */
#ifndef GB_KEYPOOL_KEYSTORE_H
#define GB_KEYPOOL_KEYSTORE_H

#include "keypool/keypool.h"
#include "store/store.h"

/* A gb_keypool_change_cb: ud is the struct gb_store (may be NULL: nothing
 * persisted).  Deleted keys are forgotten; keys added by an admin are saved
 * with their secret so they survive restarts. */
void gb_keystore_on_change(void *ud, const struct gb_key_snapshot *s);

/* Fans a key state change out to the store and to a second consumer (the
 * cluster, issue 7).  Lives as long as the pool uses it (main owns it). */
struct gb_keystore_fanout {
    struct gb_store *store;    /* may be NULL */
    gb_keypool_change_cb next; /* may be NULL */
    void *next_ud;
};

/* A gb_keypool_change_cb: ud is a struct gb_keystore_fanout. */
void gb_keystore_on_change_fanout(void *ud, const struct gb_key_snapshot *s);

/* Start-up: restores every persisted state onto the pool (keys of .env by
 * hash; keys an admin added, with their secret, are added back).  Returns
 * the number restored, or a GB_E* code. */
int gb_keystore_restore(struct gb_store *st, struct gb_keypool *kp);

#endif
